"""Node badges after an edit (R1): a failure the last run reported at a node stops showing as
current once that node, or one it reads from, changes; it stays readable as the last run's. A
parameter problem found as the value is set stays current, and unrelated nodes keep theirs."""

from __future__ import annotations

from typing import Any

import pytest

from fathom.app.commands import SetParam
from fathom.app.param_checks import downstream
from fathom.app.session import CHANGED_SINCE
from fathom.engine.graph import Graph

pytestmark = pytest.mark.gui


@pytest.fixture(autouse=True)
def f5_only(window: Any) -> None:
    """These tests are about failures F5 found: the live pre-flight checks, which would find
    the same refusals ~0.3 s after each edit (tests/app/test_preflight_live.py), stay off."""
    window.preflight.enabled = False


def badge(window: Any, node: str) -> tuple[str, str]:
    item = window.scene.nodes[node]
    return item.status, item.message


def set_param(window: Any, node: str, name: str, value: Any) -> None:
    """As the inspector's widgets do: one undoable command."""
    window.doc.undo_stack.push(SetParam(window.doc, node, name, value))


def refused_chain(add: Any, wire: Any, y: float) -> tuple[str, str]:
    """Slow -> Save Image asked for a 16-bit JPEG: valid values each, which the save node's
    own check refuses when F5 plans the run (not as the value is set)."""
    slow = add("test.slow", 0, y, seconds=0.0, steps=1)
    save = add("image.save", 300, y, path=f"out{int(y)}.jpg", bit_depth="16")
    wire(slow, "image", save, "image")
    return slow, save


def test_downstream_is_the_node_and_what_reads_from_it() -> None:
    g = Graph()
    for n in "abcd":
        g.add_node("test.slow", n)
    g.connect("a", "image", "b", "image")
    g.connect("b", "image", "c", "image")
    assert downstream(g, "b") == {"b", "c"}
    assert downstream(g, "a") == {"a", "b", "c"}
    assert downstream(g, "d") == {"d"}


def test_fixing_a_refused_value_takes_the_old_error_off_the_badge(
    window: Any, add: Any, wire: Any, run_and_wait: Any
) -> None:
    _, save = refused_chain(add, wire, 0)
    outcome = run_and_wait()
    assert outcome.problems
    status, message = badge(window, save)
    assert status == "failed" and "16" in message
    assert window.param_badges.shown.get(save) is None  # found by F5, not as the value was set
    set_param(window, save, "bit_depth", "8")
    status, after = badge(window, save)
    assert status == "idle"
    assert after == CHANGED_SINCE + message  # still readable, as the last run's
    assert "status: idle" in window.scene.nodes[save].toolTip()
    assert window.session.failure(save) == ("failed in the last run", message)
    assert run_and_wait().result.ok and badge(window, save) == ("done", "")


def test_an_upstream_edit_outdates_downstream_failures_only(
    window: Any, add: Any, wire: Any, run_and_wait: Any
) -> None:
    slow1, save1 = refused_chain(add, wire, 0)
    slow2, save2 = refused_chain(add, wire, 300)
    run_and_wait()
    assert badge(window, save1)[0] == badge(window, save2)[0] == "failed"
    set_param(window, slow1, "steps", 2)  # what save1 receives may change; save2's may not
    assert badge(window, save1)[0] == "idle"
    assert badge(window, save1)[1].startswith(CHANGED_SINCE)
    assert badge(window, save2)[0] == "failed"
    assert not badge(window, save2)[1].startswith(CHANGED_SINCE)
    # Rewiring counts too: the node it now reads from is another.
    window.scene.select_nodes([])
    wire(slow1, "image", save2, "image")
    assert badge(window, save2)[0] == "idle"
    # Selecting a node is no edit: nothing else changes.
    window.scene.select_nodes([save2])
    assert badge(window, save2)[0] == "idle"


def test_a_parameter_problem_set_after_the_run_stays_current(
    window: Any, add: Any, wire: Any, run_and_wait: Any
) -> None:
    slow, save = refused_chain(add, wire, 0)
    run_and_wait()
    set_param(window, slow, "seconds", -1.0)  # below its minimum: wrong now, not in the past
    status, message = badge(window, slow)
    assert status == "failed" and "seconds" in message
    assert not message.startswith(CHANGED_SINCE)
    assert badge(window, save)[0] == "idle"  # its refusal was about the values it had then
    set_param(window, slow, "seconds", 0.0)
    assert badge(window, slow) == ("idle", "")

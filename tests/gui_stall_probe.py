"""What a user does first in a fresh studio, under the GUI-stall watchdog, in its own process.

First-time costs (imports, caches, panels made on first use) show only in a fresh interpreter,
so ``tests/app/test_gui_stalls.py`` runs this as a child process and checks what it prints: one
JSON object mapping each action to its longest GUI-thread gap, ``[wall ms, cpu ms]``.

    python tests/gui_stall_probe.py studio WORKDIR      # open the demo, select, run, viewers
    python tests/gui_stall_probe.py standalone WORKDIR  # python -m fathom.app.viewer360
"""

from __future__ import annotations

import gc
import json
import sys
from pathlib import Path
from typing import Any

from gui_watchdog import Watchdog, pump

from fathom.app import warmup
from fathom.app.main import _app
from fathom.engine.resources import example_graphs

#: A selection is done when the preview has settled, or after this long (s).
SETTLE = 0.4


def start_studio(work: Path) -> Any:
    """The window as ``fathom-studio`` makes it (theme, settings, frozen start-up objects)."""
    app = _app()
    from fathom.app.main_window import MainWindow
    from fathom.app.settings import Settings
    from fathom.app.theme import apply_theme

    settings = Settings(work / "settings.ini")
    settings.recovery_dir = str(work / "recovery")
    settings.output_dir = str(work / "out")
    settings.device = "cpu"
    apply_theme(app, settings.theme)
    window = MainWindow(settings=settings)
    window.files.ask_unsaved = lambda: "discard"
    window.show()
    pump(0.3)
    # Start-up ends when the studio's warm-up (app.warmup: jsonschema, torch, trimesh) has: the
    # measured actions are a user's first ones after that.
    warmup.done.wait(120)
    gc.collect()
    gc.freeze()
    return window


def preview_settled(window: Any) -> bool:
    """The preview dock has shown what selection asked for (3D previews prepare off-thread)."""
    panel = window.preview.current_panel()
    return bool(getattr(panel, "idle", True))


def select_all(window: Any, ids: list[str], tag: str, found: dict[str, Any]) -> None:
    for nid in ids:
        with Watchdog() as dog:
            window.scene.select_nodes([nid])
            pump(10.0, lambda: preview_settled(window), least=SETTLE)
        found[f"{tag} {nid}"] = dog.longest_ms


def open_action(window: Any, text: str) -> Any:
    for menu_action in window.menuBar().actions():
        for a in menu_action.menu().actions():
            if a.text().replace("&", "") == text:
                return a
    raise LookupError(text)


def viewer_shown(viewer: Any, before: int = 0) -> bool:
    """The viewer has loaded its scene and shown a frame of it."""
    return viewer is not None and viewer.idle and viewer.frames_shown > before


def studio(work: Path) -> dict[str, Any]:
    window = start_studio(work)
    found: dict[str, Any] = {}
    with Watchdog() as dog:  # the same wait with nothing done: the machine's own noise
        pump(SETTLE)
    found["reference: nothing done"] = dog.longest_ms
    demo = example_graphs()["depthfusion_demo"]
    window.files.ask_open_path = lambda: demo
    with Watchdog() as dog:
        open_action(window, "Open…").trigger()  # File → Open…, the dialog answered
        pump(1.0)
    found["open demo"] = dog.longest_ms
    ids = list(window.doc.graph.nodes)
    select_all(window, ids, "select", found)
    window.scene.select_nodes([])
    window.runs.run()
    pump(300, lambda: not window.runner.running)
    assert window.session.outputs.get("pano"), "the demo run made no panorama"
    # The panorama node first: the reported case is its first selection after a run.
    pano_first = ["pano"] + [n for n in ids if n != "pano"]
    select_all(window, pano_first, "select after run", found)
    window.scene.select_nodes(["pano"])
    pump(10.0, lambda: preview_settled(window), least=SETTLE)
    with Watchdog() as dog:
        window.inspector.open360.click()  # the inspector's "Open in 360° viewer"
        pump(30.0, lambda: viewer_shown(window.opener360.viewer), least=SETTLE)
    assert viewer_shown(window.opener360.viewer), "the panorama never showed in the viewer"
    found["open 360 viewer (pano)"] = dog.longest_ms
    window.opener360.viewer.close()
    window.scene.select_nodes(["mesh"])
    pump(30.0, lambda: preview_settled(window), least=SETTLE)
    viewer = window.opener360.viewer
    before = viewer.frames_shown
    button = window.preview.panel("mesh").open360_button
    assert button.isEnabled(), "the 3D preview of the mesh node offers no 360° button"
    with Watchdog() as dog:
        button.click()  # the 3D preview's "360°"
        pump(30.0, lambda: viewer_shown(viewer, before), least=SETTLE)
    assert viewer_shown(viewer, before), "the mesh never showed in the 360° viewer"
    found["open 360 viewer (mesh)"] = dog.longest_ms
    window.doc.mark_saved()
    window.close()
    return found


def standalone(work: Path) -> dict[str, Any]:
    from fathom.app import viewer360

    _app()
    (work / "settings.ini").touch()
    args = viewer360.build_parser().parse_args(["--settings", str(work / "settings.ini")])
    viewer360.prepare(args)  # as ``main`` does before the window shows
    with Watchdog() as dog:
        viewer = viewer360.open_standalone(["--settings", str(work / "settings.ini")])
        pump(30.0, lambda: viewer_shown(viewer), least=SETTLE)
    assert viewer.frames_shown > 0, viewer.message
    viewer.close()
    return {"open standalone viewer": dog.longest_ms}


if __name__ == "__main__":
    mode, workdir = sys.argv[1], Path(sys.argv[2])
    result = studio(workdir) if mode == "studio" else standalone(workdir)
    sys.stdout.write("\n" + json.dumps(result) + "\n")

"""Screenshots of a subgraph made in the studio, for the README.

Opens the Depth Tools example, turns smooth → fill holes → normals into one subgraph node (as a
user does: select, Make Subgraph), runs it, opens its inside, exposes a parameter, and saves two
pictures: the inside with its breadcrumb, then the subgraph node with the exposed parameter in
the inspector. Run it under a display (``xvfb-run -a``):

    xvfb-run -a python scripts/screenshot_subgraph.py docs/screenshots
"""

from __future__ import annotations

import sys

from studio_shot import parse_args, studio_window

from fathom.app.main import _wait

INSIDE = ["smooth", "filled", "normals"]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__, "where subgraph_inside.png and subgraph_node.png go", argv)
    with studio_window(args.size, "depth_tools") as (app, window):
        subgraphs = window.subgraphs
        subgraphs.ask_name = lambda suggestion, error: "surface_normals"
        window.scene.select_nodes(INSIDE)
        inst = subgraphs.make_from_selection()
        if inst is None:
            return 1
        with_run = window.runs.run()
        _wait(app, 120, until=lambda: with_run and not window.runner.running)
        subgraphs.open_node(inst)
        window.scene.select_nodes(["smooth"])
        subgraphs.ask_exposed = lambda title, rows: {rows[0].param: rows[0].suggestion}
        subgraphs.expose_selected()
        _wait(app, 0.5)
        args.folder.mkdir(parents=True, exist_ok=True)
        ok = window.grab().save(str(args.folder / "subgraph_inside.png"))
        subgraphs.up()
        window.scene.select_nodes([inst])
        _wait(app, 0.5)
        ok = window.grab().save(str(args.folder / "subgraph_node.png")) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""The README's examples work as written: its node example registers (declared once) and runs."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import numpy as np

from fathom.engine.context import NodeContext, RunOptions
from fathom.engine.registry import Registry
from fathom.engine.types import Image

ROOT = Path(__file__).resolve().parents[1]


def _writing_a_node_block() -> str:
    text = (ROOT / "README.md").read_text("utf-8")
    section = text.split("## Writing a node", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.S)
    return code


def test_the_readme_node_example_registers_and_runs(tmp_path: Path) -> None:
    module_file = tmp_path / "readme_nodes.py"
    module_file.write_text(_writing_a_node_block(), "utf-8")
    spec = importlib.util.spec_from_file_location("readme_nodes", module_file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["readme_nodes"] = module
    try:
        spec.loader.exec_module(module)
        reg = Registry()
        assert reg.register_module(module) == 2
        assert reg.opener(".cube") == (module.LoadLut, "path")
        ctx = NodeContext("b", RunOptions(base_dir=tmp_path), None)
        out = module.Brighten().run(ctx, image=Image(np.full((2, 2, 3), 0.4, np.float32)), gain=2.0)
        assert np.allclose(out["image"].data, 0.8)
        (tmp_path / "look.cube").write_text("LUT_3D_SIZE 2")
        assert module.LoadLut().run(ctx, path="look.cube") == {"text": "LUT_3D_SIZE 2"}
    finally:
        sys.modules.pop("readme_nodes", None)

"""The live depth point-cloud example (DepthFusion's live use) runs headless with ``fathom live
--seconds 2`` on a tiny depth model, and as an ordinary render gives the last frame's cloud."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from object_models import build_tiny_depth

from fathom.engine import cli, graphfile
from fathom.engine.context import RunOptions
from fathom.engine.executor import Executor
from fathom.engine.registry import Registry
from fathom.engine.types import PointCloud

GRAPHS = Path(__file__).resolve().parents[1] / "assets" / "graphs"


def test_the_live_point_cloud_example_runs_headless(
    registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``fathom live --seconds 2`` on the bundled clip with a tiny depth model: frames reach
    the window node (recorded headless) and the point cloud is made each tick, no errors."""
    model = build_tiny_depth(tmp_path / "depth")
    report = tmp_path / "run.json"
    code = cli.main(
        [
            "live",
            str(GRAPHS / "live_depth_pointcloud.json"),
            "--seconds",
            "2",
            "--out",
            str(tmp_path / "out"),
            "--report",
            str(report),
            "--device",
            "cpu",
            "--quiet",
            "--set",
            f"depth.model={model}",
        ]
    )
    capsys.readouterr()
    assert code == 0
    got = json.loads(report.read_text())
    assert got["errors"] == {}
    assert got["frames_out"] >= 1 and got["frames_in"] >= got["frames_out"]
    assert (tmp_path / "out" / "depth_window.mp4").is_file()
    # The same graph as an ordinary render: the last frame's point cloud, coloured.
    g = graphfile.load(GRAPHS / "live_depth_pointcloud.json", registry)
    g.set_param("depth", "model", str(model))
    g.set_param("src", "loop", False)
    result = Executor(registry).run(
        g, targets=["points"], options=RunOptions(output_dir=tmp_path, base_dir=GRAPHS)
    )
    points = result.values["points"]["points"]
    assert isinstance(points, PointCloud) and len(points) > 100 and points.colors is not None
    assert np.all(points.points[:, 2] >= 1.0 - 1e-4) and np.all(points.points[:, 2] <= 4.0 + 1e-3)

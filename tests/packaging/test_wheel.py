"""The wheel carries everything the app needs at run time: built, installed into a fresh virtual
environment and run from outside the checkout (the check that catches files left out)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WHEEL_MUST_HOLD = {
    "fathom/engine/schema/graph.schema.json",
    "fathom/engine/models/configs/sdxl-base/unet/config.json",  # single-file checkpoints
    "fathom/engine/cli.py",
    "fathom/nodes/io.py",
    "fathom/app/main.py",
    "fathom/engine/distributed/scheduler.py",
    "fathom/engine/live/session.py",
    "fathom/assets/build.json",
    "fathom/assets/graphs/depthfusion_demo.json",
    "fathom/assets/scene/rgb.png",
    "fathom/assets/scene/depth.png",
    "fathom/assets/pano/rgb.png",
    "fathom/assets/pano/distance.png",
    "fathom/assets/icons/fathom.png",
    "fathom/assets/icons/dice.svg",  # the inspector's seed and folder buttons
    "fathom/assets/icons/lock.svg",
    "fathom/assets/icons/folder.svg",
}


def run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 300) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def _venv_with(wheel: Path, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A fresh venv with only the wheel installed; its bin folder and environment."""
    # The venv sees the heavy dependencies (torch...) of this interpreter, not this checkout:
    # a .pth line adds this interpreter's site-packages after the venv's own. (Not
    # --system-site-packages: run from inside a venv, that gives the *base* interpreter's.)
    # Lines of a .pth add folders without running the .pth files in them, so the checkout's
    # editable-install hook stays out.
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], tmp_path, dict(os.environ))
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    venv_site = run(
        [str(bindir / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        tmp_path,
        dict(os.environ),
    ).strip()
    ours = [p for p in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}]
    (Path(venv_site) / "outer-site-packages.pth").write_text("\n".join(ours) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    run(
        [
            str(bindir / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        tmp_path,
        env,
    )
    return bindir, env


def test_wheel_installs_and_renders_outside_the_checkout(tmp_path: Path) -> None:
    pytest.importorskip("build")
    dist = tmp_path / "dist"
    # Without isolation: the build backend (setuptools) is already here, nothing is downloaded.
    # With no target, build makes the sdist and then the wheel from it, so both are checked.
    run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(ROOT)],
        tmp_path,
        dict(os.environ),
    )
    (wheel,) = dist.glob("fathom_studio-*.whl")
    (sdist,) = dist.glob("fathom_studio-*.tar.gz")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert WHEEL_MUST_HOLD <= names, WHEEL_MUST_HOLD - names
    # One top-level import name: the wheel claims `fathom` and nothing else.
    tops = {n.split("/", 1)[0] for n in names if not n.split("/", 1)[0].endswith(".dist-info")}
    assert tops == {"fathom"}, tops
    assert not any(n.startswith(("tests/", "bench/")) for n in names)
    with tarfile.open(sdist) as tar:
        members = {m.split("/", 1)[1] for m in tar.getnames() if "/" in m}
    assert {
        "setup.py",
        "MANIFEST.in",
        "assets/graphs/depthfusion_demo.json",
        "packaging/fathom.spec",
        "engine/schema/graph.schema.json",
        "engine/models/configs/sd15/tokenizer/tokenizer_config.json",
    } <= members

    bindir, env = _venv_with(wheel, tmp_path)
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = run(
        [
            str(bindir / "python"),
            "-c",
            "import fathom.engine as engine, fathom.nodes, fathom.engine.resources as r; "
            "print(engine.__file__); print(r.assets_dir())",
        ],
        work,
        env,
    ).split()
    assert all(str(bindir.parent) in w for w in where), where  # the installed copy

    fathom = str(bindir / "fathom")
    version = run([fathom, "--version"], work, env)
    assert "fathom 0.1.0" in version and "kind wheel" in version and "device:" in version
    listing = run([fathom, "nodes"], work, env)
    assert "image.save" in listing and "view.panorama360" in listing
    assert "depthfusion_demo" in run([fathom, "examples"], work, env)
    run([fathom, "validate", "--example", "depthfusion_demo"], work, env)
    # Every output of the demo, with the two videos cut to six frames (their encode is the cost).
    run(
        [
            fathom,
            "render",
            "--example",
            "depthfusion_demo",
            "--out",
            "demo",
            "--device",
            "cpu",
            "--frames",
            "0-5",
            "--report",
            "run.json",
            "--quiet",
        ],
        work,
        env,
        timeout=600,
    )
    report = json.loads((work / "run.json").read_text())
    assert report["status"] == "ok"
    written = {Path(p).name for p in report["outputs"]}
    assert {
        "scene_mesh.glb",
        "orbit.mp4",
        "pano_walk.mp4",
        "panorama.glb",
        "cube_map.png",
        "view_240.png",
    } <= written
    assert (work / "demo" / "orbit.mp4").stat().st_size > 1000

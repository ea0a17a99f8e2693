"""The desktop bundle (PyInstaller, one folder) builds, renders the demo headless and opens the
app offscreen. Slow (about 5 minutes and 1.2 GB): runs with --run-slow or FATHOM_RUN_SLOW=1.
FATHOM_BUNDLE=dist/fathom-studio tests an already built bundle instead of building one."""

from __future__ import annotations

import configparser
import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bundle() -> Path:
    given = os.environ.get("FATHOM_BUNDLE")
    if given:
        return Path(given).resolve()
    pytest.importorskip("PyInstaller")
    proc = subprocess.run(
        ["bash", str(ROOT / "packaging" / "build.sh")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return ROOT / "dist" / "fathom-studio"


def run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 600) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout


def user_env(home: Path) -> dict[str, str]:
    """A user whose models would sit in their own Hugging Face cache; no checkout on the path."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "FATHOM_ASSETS")
    }
    env.update(HF_HOME=str(home / "hf"), QT_QPA_PLATFORM="offscreen", HOME=str(home))
    return env


def test_bundle_layout_and_desktop_entry(bundle: Path) -> None:
    assert (bundle / "fathom-studio").is_file() and (bundle / "fathom").exists()
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str  # keys are case-sensitive
    entry.read(bundle / "fathom-studio.desktop.in")
    section = entry["Desktop Entry"]
    assert section["Type"] == "Application" and section["Name"] == "Fathom Studio"
    assert section["Exec"].startswith("@BUNDLE@/fathom-studio") and section["Icon"]
    from PIL import Image

    assert Image.open(bundle / "fathom-studio.png").size == (256, 256)
    # Models are never shipped inside: they load from the user's cache or chosen folders.
    weights = [
        p
        for p in bundle.rglob("*")
        if p.suffix in (".safetensors", ".ckpt", ".bin") and p.stat().st_size > 1_000_000
    ]
    assert not weights, weights[:5]


def test_bundle_cli_renders_the_demo(bundle: Path, tmp_path: Path) -> None:
    env = user_env(tmp_path)
    version = run([str(bundle / "fathom"), "--version"], tmp_path, env)
    assert "kind bundle" in version and "fathom 0.1.0" in version
    assert f"hf_cache {tmp_path / 'hf' / 'hub'}" in version  # the user's cache, not the bundle
    run(
        [
            str(bundle / "fathom"),
            "render",
            "--example",
            "depthfusion_demo",
            "--out",
            "demo",
            "--frames",
            "0-5",
            "--device",
            "cpu",
            "--report",
            "run.json",
            "--quiet",
        ],
        tmp_path,
        env,
    )
    report = json.loads((tmp_path / "run.json").read_text())
    assert report["status"] == "ok"
    assert {"scene_mesh.glb", "orbit.mp4", "panorama.glb", "cube_map.png"} <= {
        Path(p).name for p in report["outputs"]
    }


def test_bundle_app_self_test(bundle: Path, tmp_path: Path) -> None:
    """Opens the main window offscreen, loads an example graph, closes."""
    out = run(
        [str(bundle / "fathom-studio"), "--self-test"], tmp_path, user_env(tmp_path), timeout=300
    )
    assert "depthfusion_demo.json: ok" in out and "self-test passed" in out, out

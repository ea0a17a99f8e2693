"""Delta Distillation (engine.accel.delta) and `fathom distill` on tiny random-weight teachers
(a SegFormer and a Depth Anything) saved like users' folders, learning from a real clip file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from object_models import build_tiny_depth
from temporal_models import build_tiny_segformer, pan_frames, write_clip
from video_depth_models import build_tiny_dpt

from fathom.engine.accel.delta import (
    CONFIG,
    WEIGHTS,
    DeltaRunner,
    StudentError,
    distill,
    load_student,
    load_teacher,
    teacher_features,
)
from fathom.engine.cli import main


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("delta")
    build_tiny_segformer(root / "seg")
    build_tiny_depth(root / "depth")
    write_clip(root / "pan.webp", pan_frames(14, 64, step=4))
    write_clip(root / "pan56.webp", pan_frames(14, 56, step=14))
    return root


@pytest.mark.parametrize(("teacher", "clip"), [("seg", "pan.webp"), ("depth", "pan56.webp")])
def test_student_beats_copying_the_previous_features_on_held_out_frames(
    work: Path, teacher: str, clip: str
) -> None:
    out = work / f"student-{teacher}"
    report = distill(work / teacher, [work / clip], out, steps=120, held_out=0.25)
    assert report.held_out_pairs >= 3 and report.train_pairs >= 9
    assert report.held_out_error < report.copy_error, report
    doc = json.loads((out / CONFIG).read_text())
    assert sorted(p.name for p in out.iterdir()) == sorted([CONFIG, WEIGHTS])  # no pickle
    assert doc["family"] == ("segmentation" if teacher == "seg" else "depth")
    assert doc["trained"]["held_out_error"] == pytest.approx(report.held_out_error)


def test_student_round_trip_and_a_mismatched_teacher_is_refused(work: Path) -> None:
    out = work / "student-rt"
    distill(work / "seg", [work / "pan.webp"], out, steps=5)
    processor, net, family = load_teacher(work / "seg")
    student = load_student(out, net)
    from safetensors.torch import load_file

    saved = load_file(str(out / WEIGHTS))
    for k, v in student.state_dict().items():
        assert torch.equal(v, saved[k])
    other = build_tiny_segformer(work / "seg-other", seed=1)
    _, other_net, _ = load_teacher(other)
    with pytest.raises(StudentError, match="trained for") as e:
        load_student(out, other_net)
    assert "fathom distill" in e.value.fix
    # The runner: keyframe = the teacher's own output; then student-updated features.
    frames = pan_frames(3, 64, step=4)
    px = [
        processor(images=(f * 255).round().astype(np.uint8), return_tensors="pt")["pixel_values"]
        for f in frames
    ]
    runner = DeltaRunner(net, student)
    with torch.inference_mode():
        (_, _), want = teacher_features(net, family, px[0])
        assert torch.equal(runner.step(px[0]), want)
        assert runner.step(px[1]).shape == want.shape


def test_cancelling_writes_nothing(work: Path) -> None:
    out = work / "never"
    calls = {"n": 0}

    def cancelled() -> bool:
        calls["n"] += 1
        return calls["n"] > 20  # during the teacher pass or training

    with pytest.raises(KeyboardInterrupt):
        distill(work / "seg", [work / "pan.webp"], out, steps=50, cancelled=cancelled)
    assert not out.exists()
    assert not [p for p in work.iterdir() if p.name.startswith(".never")]


def test_fathom_distill_end_to_end(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = work / "cli-student"
    code = main(["distill", str(work / "seg"), str(work / "pan.webp"), "--out", str(out),
                 "--steps", "12", "--device", "cpu"])  # fmt: skip
    text = capsys.readouterr().out
    assert code == 0
    assert "teacher features 14/14" in text and "step 12/12" in text
    assert "held-out error" in text and f"wrote {out}" in text
    assert (out / WEIGHTS).is_file()
    bad = main(["distill", str(work / "pan.webp"), str(work / "pan.webp"), "--out", str(out)])
    assert bad == 2
    assert "fix:" in capsys.readouterr().err


def test_bad_settings_and_folders_are_refused_before_training(work: Path) -> None:
    clip = [work / "pan.webp"]
    # The user's data is never overwritten: a model folder, a file, the teacher itself.
    other = work / "someone_elses"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    (work / "a_file").write_text("keep me too")
    for out in (other, work / "a_file", work / "seg"):
        with pytest.raises(StudentError, match="--out"):
            distill(work / "seg", clip, out, steps=2)
    assert (other / "notes.txt").read_text() == "keep me"
    assert (work / "a_file").read_text() == "keep me too"
    assert (work / "seg" / "config.json").is_file()
    with pytest.raises(StudentError, match="--steps"):
        distill(work / "seg", clip, work / "s0", steps=0)
    with pytest.raises(StudentError, match="--held-out"):
        distill(work / "seg", clip, work / "s0", steps=2, held_out=1.5)
    with pytest.raises(StudentError, match="cannot read clip") as err:
        distill(work / "seg", [work / "missing.mp4"], work / "s0", steps=2)
    assert "complete video" in err.value.fix
    with pytest.raises(StudentError, match="Depth Anything"):
        distill(build_tiny_dpt(work / "dpt"), clip, work / "s0", steps=2)
    assert not (work / "s0").exists()
    # An earlier student is replaced.
    again = work / "student_again"
    distill(work / "seg", clip, again, steps=2)
    distill(work / "seg", clip, again, steps=3)
    assert json.loads((again / CONFIG).read_text())["trained"]["steps"] == 3

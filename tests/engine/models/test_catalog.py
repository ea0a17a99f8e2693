"""`fathom models list`: every local model with its family, kind, size and where it was found,
from the models folders (top level and add-on subfolders) and the Hugging Face caches; and
depth and segmentation folders told apart by what their config says."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from fathom.engine.models.catalog import ModelEntry, fits, human_size, list_models, lora_fits
from fathom.engine.models.families import identify


def _safetensors(path: Path, shapes: dict[str, tuple[int, ...]]) -> Path:
    from safetensors.numpy import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: np.zeros(s, np.float32) for k, s in shapes.items()}, str(path))
    return path


def fake_lora(path: Path, width: int) -> Path:
    """A LoRA file as training scripts save one (diffusers key names), small: only its header
    is ever read here. ``width``: the text features its cross-attention takes."""
    block = "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2"
    return _safetensors(
        path, {f"{block}.to_k.lora_A.weight": (4, width), f"{block}.to_k.lora_B.weight": (32, 4)}
    )


def transformers_folder(path: Path, config: dict) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config))
    _safetensors(path / "model.safetensors", {"w": (2, 2)})
    return path


def hub_entry(cache: Path, repo_id: str, files: dict[str, bytes]) -> Path:
    """A Hugging Face cache entry laid out as the hub client writes it (blobs, a snapshot of
    links, refs/main)."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snap = repo / "snapshots" / "0123abcd"
    for i, (name, body) in enumerate(files.items()):
        blob = repo / "blobs" / f"blob{i}"
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(body)
        (snap / name).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(blob, (snap / name).parent), snap / name)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text("0123abcd")
    return snap


DEPTH_ANYTHING = {
    "architectures": ["DepthAnythingForDepthEstimation"],
    "model_type": "depth_anything",
}
SEGFORMER = {"architectures": ["SegformerForSemanticSegmentation"], "model_type": "segformer"}


def test_depth_and_segmentation_folders_are_told_by_their_config(tmp_path: Path) -> None:
    cases = {
        "da": (DEPTH_ANYTHING, ("depth", "depth")),
        "dpt": ({"architectures": ["DPTForDepthEstimation"], "model_type": "dpt"}, ("depth",) * 2),
        "dpt-seg": (
            {"architectures": ["DPTForSemanticSegmentation"], "model_type": "dpt"},
            ("segmentation",) * 2,
        ),
        "segformer": (SEGFORMER, ("segmentation",) * 2),
        "m2f": (
            {"architectures": ["Mask2FormerForUniversalSegmentation"]},
            ("segmentation",) * 2,
        ),
        "untyped": ({"model_type": "depth_anything"}, ("depth", "depth")),
        "clip": ({"architectures": ["CLIPVisionModel"]}, ("unknown", "folder")),
    }
    for name, (config, (family, kind)) in cases.items():
        info = identify(transformers_folder(tmp_path / name, config))
        assert (info.family, info.kind) == (family, kind), name
    marigold = tmp_path / "marigold"
    marigold.mkdir()
    (marigold / "model_index.json").write_text('{"_class_name": "MarigoldDepthPipeline"}')
    assert identify(marigold).family == "depth"


@pytest.fixture
def folders(
    tmp_path: Path, tiny_sd: Path, tiny_sdxl: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Path]:
    """A models folder as an artist has one (a pipeline, an SDXL model, LoRAs in loras/ and
    a subfolder of it, a depth and a segmentation model, a pickle checkpoint, a hub cache
    entry), and the user's Hugging Face cache with a depth model and a LoRA repository."""
    from huggingface_hub import constants

    models = tmp_path / "models"
    shutil.copytree(tiny_sd, models / "sd-tiny")
    shutil.copytree(tiny_sdxl, models / "xl-tiny")
    fake_lora(models / "loras" / "ink.safetensors", 32)
    fake_lora(models / "loras" / "xl" / "ink-xl.safetensors", 64)
    fake_lora(models / "embeddings" / "not-an-embedding.safetensors", 32)
    transformers_folder(models / "depth-small", DEPTH_ANYTHING)
    transformers_folder(models / "segformer", SEGFORMER)
    (models / "old.ckpt").write_bytes(b"never opened")
    (models / "notes.txt").write_text("not a model")
    weights = _safetensors(tmp_path / "w.safetensors", {"w": (2, 2)}).read_bytes()
    depth_files = {"config.json": json.dumps(DEPTH_ANYTHING).encode(), "model.safetensors": weights}
    hub_entry(models, "org/depth-hub", depth_files)
    user_cache = tmp_path / "hf-cache"
    lora_repo = tmp_path / "lora-src.safetensors"
    fake_lora(lora_repo, 768)
    hub_entry(user_cache, "someone/style-lora", {"style.safetensors": lora_repo.read_bytes()})
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(user_cache))
    monkeypatch.setenv("FATHOM_SETTINGS", str(tmp_path / "absent.conf"))
    monkeypatch.setenv("FATHOM_MODELS", str(models) + os.pathsep + str(tmp_path / "missing"))
    return {"models": models, "cache": user_cache}


def _by_name(entries: list[ModelEntry]) -> dict[str, ModelEntry]:
    return {e.name: e for e in entries}


def test_every_model_with_its_family_kind_size_and_source(folders: dict[str, Path]) -> None:
    entries, places = list_models()
    got = _by_name(entries)
    expect = {
        "sd-tiny": ("sd1", "pipeline", "models folder", ""),
        "xl-tiny": ("sdxl", "pipeline", "models folder", ""),
        "ink": ("unknown", "lora", "models folder", "loras"),
        "xl/ink-xl": ("unknown", "lora", "models folder", "loras"),
        "not-an-embedding": ("unknown", "lora", "models folder", "embeddings"),
        "depth-small": ("depth", "depth", "models folder", ""),
        "segformer": ("segmentation", "segmentation", "models folder", ""),
        "old": ("unknown", "file", "models folder", ""),
        "org/depth-hub": ("depth", "depth", "hub cache", ""),
        "someone/style-lora/style.safetensors": ("sd1", "lora", "hub cache", ""),
    }
    assert set(got) == set(expect)  # notes.txt is no model
    for name, (family, kind, source, sub) in expect.items():
        e = got[name]
        assert (e.family, e.kind, e.source, e.subfolder) == (family, kind, source, sub), name
        assert e.size_bytes > 0
    assert got["sd-tiny"].architecture == "StableDiffusionPipeline"
    assert got["depth-small"].model_type == "depth_anything" and got["sd-tiny"].model_type == ""
    assert got["sd-tiny"].cross_attention_dim == 32 and got["xl-tiny"].cross_attention_dim == 64
    assert got["org/depth-hub"].folder == str(folders["models"])  # a models folder's own cache
    assert got["someone/style-lora/style.safetensors"].folder == str(folders["cache"])
    assert "pickle" in got["old"].problem and got["sd-tiny"].usable
    # What a node's parameter takes: the name in a models folder (a LoRA's, relative to its
    # add-on subfolder), the hub id, or the file where only a path finds it.
    assert got["sd-tiny"].reference == "sd-tiny" and got["xl/ink-xl"].reference == "xl/ink-xl"
    assert got["org/depth-hub"].reference == "org/depth-hub"
    style = got["someone/style-lora/style.safetensors"]
    assert style.reference == style.path
    assert [str(p) for p in places][1:] == [
        f"{folders['models'].parent / 'missing'} (FATHOM_MODELS, missing)",
        f"{folders['cache']} (Hugging Face cache)",
    ]
    assert [k for k, _ in places[0].addon_folders] == ["lora", "embedding"]


def test_what_fits_a_node_and_a_model(folders: dict[str, Path]) -> None:
    entries, _ = list_models()
    got = _by_name(entries)

    def fitting(families: tuple[str, ...], inpainting: bool | None = None) -> list[str]:
        return sorted(e.name for e in entries if fits(e, families, inpainting))

    assert fitting(("sd1", "sd2", "sdxl"), False) == ["sd-tiny", "xl-tiny"]
    assert fitting(("sd1", "sd2"), True) == []  # no inpainting model here
    assert fitting(("depth",)) == ["depth-small", "org/depth-hub"]
    assert fitting(("segmentation",)) == ["segformer"]
    loras = [e for e in entries if e.kind == "lora"]
    assert sorted(e.name for e in loras if lora_fits(e, got["sd-tiny"])) == [
        "ink",
        "not-an-embedding",
    ]
    assert [e.name for e in loras if lora_fits(e, got["xl-tiny"])] == ["xl/ink-xl"]
    assert len([e for e in loras if lora_fits(e, None)]) == 4  # model unknown: every LoRA


def test_a_name_an_earlier_folder_shadows_is_referred_to_by_its_path(
    folders: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = tmp_path / "first"
    transformers_folder(first / "sd-tiny", DEPTH_ANYTHING)
    monkeypatch.setenv("FATHOM_MODELS", f"{first}{os.pathsep}{folders['models']}")
    entries, _ = list_models()
    same = [e for e in entries if e.name == "sd-tiny"]
    assert [e.reference for e in same] == ["sd-tiny", str(folders["models"] / "sd-tiny")]


def test_the_command_line_prints_the_documented_json_and_a_table(
    folders: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from fathom.engine.cli import main

    assert main(["models", "list", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["format"], doc["version"]) == ("fathom.models", 1)
    keys = {
        "name",
        "reference",
        "path",
        "family",
        "family_title",
        "kind",
        "architecture",
        "inpainting",
        "one_step",
        "cross_attention_dim",
        "size_bytes",
        "source",
        "folder",
        "subfolder",
        "problem",
        "model_type",
    }
    assert all(set(m) == keys for m in doc["models"])
    xl = next(m for m in doc["models"] if m["name"] == "xl-tiny")
    assert xl["family_title"] == "SDXL" and xl["kind"] == "pipeline"
    first = doc["looked_in"][0]
    assert first["origin"] == "FATHOM_MODELS" and first["exists"] is True
    assert first["addon_folders"][0] == {
        "kind": "lora",
        "path": str(folders["models"] / "loras"),
    }
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "loras/ink" in out and "SDXL" in out and "looked in:" in out
    assert "! a pickle checkpoint" in out


def test_sizes_read_as_people_read_them() -> None:
    assert human_size(2_132_856_622) == "2.1 GB"
    assert human_size(12_000_000_000) == "12 GB"
    assert human_size(335_000_000) == "335 MB"
    assert human_size(900) == "900 B"


def fake_ip_adapter(path: Path, width: int, encoder: bool = True) -> Path:
    """An IP-Adapter file (header only is read) for ``width``-wide text features, with the
    image_encoder/ folder beside it as h94/IP-Adapter lays one out."""
    block = "ip_adapter.1.to_k_ip.weight"
    _safetensors(path, {"image_proj.proj.weight": (4 * width, 8), block: (width, 8)})
    if encoder:
        transformers_folder(path.parent / "image_encoder", {"architectures": ["CLIPVisionModel"]})
    return path


def controlnet_folder(path: Path) -> Path:
    """A diffusers ControlNet folder (its config names the class; SD 1.5's, no text-time)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps({"_class_name": "ControlNetModel"}))
    _safetensors(
        path / "diffusion_pytorch_model.safetensors",
        {"controlnet_cond_embedding.conv_in.weight": (2, 2), "down_blocks.0.w": (2, 2)},
    )
    return path


def test_controlnets_and_ip_adapters_are_listed_by_kind_once_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ControlNet folder is one model (not also its weights file); an IP-Adapter's image
    encoder is part of it, not a model; one without its encoder says why it cannot run; the
    IP-Adapters of a hub repository are found in its subfolders (the h94 layout)."""
    from huggingface_hub import constants

    models = tmp_path / "models"
    controlnet_folder(models / "controlnet" / "depth")
    fake_ip_adapter(models / "ipadapter" / "plus.safetensors", 768)
    fake_ip_adapter(models / "ipadapter" / "lone" / "bare.safetensors", 2048, encoder=False)
    adapter = fake_ip_adapter(tmp_path / "src" / "ip.safetensors", 768)
    encoder = adapter.parent / "image_encoder"
    hub_entry(
        tmp_path / "hf-cache",
        "h94/IP-Adapter",
        {
            "models/ip-adapter_sd15.safetensors": adapter.read_bytes(),
            "models/image_encoder/config.json": (encoder / "config.json").read_bytes(),
            "models/image_encoder/model.safetensors": (encoder / "model.safetensors").read_bytes(),
        },
    )
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("FATHOM_SETTINGS", str(tmp_path / "absent.conf"))
    monkeypatch.setenv("FATHOM_MODELS", str(models))
    got = _by_name(list_models()[0])
    hub = "h94/IP-Adapter/models/ip-adapter_sd15.safetensors"
    assert set(got) == {"depth", "plus", "lone/bare", hub}
    assert (got["depth"].kind, got["depth"].family, got["depth"].label) == (
        "controlnet",
        "sd1",
        "Stable Diffusion 1.x ControlNet",
    )
    assert (got["plus"].kind, got["plus"].family, got["plus"].usable) == ("ip-adapter", "sd1", True)
    assert "image_encoder" in got["lone/bare"].problem
    assert got[hub].kind == "ip-adapter" and got[hub].usable and got[hub].reference == got[hub].path


def test_a_node_parameter_resolves_as_its_node_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``locate_kind``: a ControlNet by name in controlnet/ or as any model; an IP-Adapter
    only as a file; the message for a missing name points at the kind's subfolder, for a
    missing hub id at `fathom models pull`."""
    from fathom.engine.models.locate import ModelError, locate_kind

    models = tmp_path / "models"
    net = controlnet_folder(models / "controlnet" / "depth")
    top = controlnet_folder(models / "canny")
    plus = fake_ip_adapter(models / "ipadapter" / "plus.safetensors", 768)
    monkeypatch.setenv("FATHOM_SETTINGS", str(tmp_path / "absent.conf"))
    monkeypatch.setenv("FATHOM_MODELS", str(models))
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    assert locate_kind("depth", "controlnet") == net
    assert locate_kind("canny", "controlnet") == top
    assert locate_kind("plus", "ip-adapter") == plus
    with pytest.raises(ModelError, match="controlnet/"):
        locate_kind("gone", "controlnet")
    with pytest.raises(ModelError, match="fathom models pull someone/cn"):
        locate_kind("someone/cn", "controlnet")
    with pytest.raises(ModelError, match="ipadapter/"):
        locate_kind("canny", "ip-adapter")  # a folder is no IP-Adapter
    assert locate_kind("canny", "model") == top

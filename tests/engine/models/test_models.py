"""Model management: resolving references, safetensors only, single files, budgets, the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from ldm_layout import clip_to_ldm, unet_to_ldm, vae_to_ldm

from fathom.engine.models import ModelError, ModelManager, locate_model
from fathom.engine.models.catalog import list_models
from fathom.engine.models.locate import model_folders, safetensors_files, weights_variant
from fathom.engine.models.memory import choose_offload, is_oom, module_nbytes, parse_bytes
from fathom.engine.models.pull import pull_model

# ---- resolving -----------------------------------------------------------------------------


@pytest.fixture
def no_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FATHOM_SETTINGS", str(tmp_path / "absent.conf"))
    monkeypatch.delenv("FATHOM_MODELS", raising=False)


def test_a_reference_resolves_to_a_path_a_models_folder_entry_or_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_settings: None
) -> None:
    models = tmp_path / "models"
    (models / "sd-tiny").mkdir(parents=True)
    (models / "anime.safetensors").write_bytes(b"x")
    monkeypatch.setenv("FATHOM_MODELS", str(models))
    assert locate_model(str(models / "sd-tiny")) == models / "sd-tiny"
    assert locate_model("sd-tiny") == models / "sd-tiny"
    assert locate_model("anime") == models / "anime.safetensors"
    # Relative to the graph's folder first.
    (tmp_path / "graphs" / "local").mkdir(parents=True)
    assert locate_model("local", tmp_path / "graphs") == tmp_path / "graphs" / "local"


def test_a_missing_model_says_everywhere_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_settings: None
) -> None:
    monkeypatch.setenv("FATHOM_MODELS", str(tmp_path / "m1") + ":" + str(tmp_path / "m2"))
    with pytest.raises(ModelError) as err:
        locate_model("someone/nothing-here")
    text = str(err.value)
    for place in (tmp_path / "m1" / "someone/nothing-here", tmp_path / "m2", "Hugging Face cache"):
        assert str(place) in text
    assert "fathom models pull someone/nothing-here" in text
    with pytest.raises(ModelError, match="no model was given"):
        locate_model("  ")


def test_the_gui_settings_file_adds_a_models_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "Fathom Studio.conf"
    conf.write_text(f"[General]\nmodels_dir={tmp_path / 'gui-models'}\ntheme=dark\n")
    monkeypatch.setenv("FATHOM_SETTINGS", str(conf))
    monkeypatch.setenv("FATHOM_MODELS", str(tmp_path / "env-models"))
    assert model_folders() == [tmp_path / "env-models", tmp_path / "gui-models"]


def test_pickle_checkpoints_are_refused_with_how_to_convert(tmp_path: Path) -> None:
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"not opened")
    with pytest.raises(ModelError) as err:
        safetensors_files(ckpt)
    assert "pickle" in str(err.value) and "run any code" in str(err.value)
    assert "save_pretrained" in str(err.value)
    folder = tmp_path / "bin-only"
    (folder / "unet").mkdir(parents=True)
    (folder / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"x")
    with pytest.raises(ModelError, match="only pickle-based weights"):
        safetensors_files(folder)


def test_a_pipeline_folder_counts_only_the_weights_its_pipeline_loads(tmp_path: Path) -> None:
    """A hub-style folder: a single-file checkpoint at the top and both precisions of a part;
    the pipeline loads each component's plain file (or the variant where that is all), and
    what Fathom's loaders read besides (a tiny preview VAE) counts too."""

    def folder(name: str, index: str, files: list[str]) -> Path:
        root = tmp_path / name
        (root).mkdir()
        (root / "model_index.json").write_text(index)
        for f in files:
            (root / f).parent.mkdir(parents=True, exist_ok=True)
            (root / f).write_bytes(b"x")
        return root

    def got(root: Path) -> list[str]:
        return [str(f.relative_to(root)) for f in safetensors_files(root)]

    svd = folder(
        "svd",
        '{"_class_name": "StableVideoDiffusionPipeline", "unet": ["d", "U"], '
        '"vae": ["d", "V"], "image_encoder": ["t", "C"], "scheduler": ["d", "S"]}',
        [
            "svd_xt.safetensors",
            "unet/diffusion_pytorch_model.safetensors",
            "unet/diffusion_pytorch_model.fp16.safetensors",
            "vae/diffusion_pytorch_model.fp16.safetensors",
            "image_encoder/model-00001-of-00002.safetensors",
            "image_encoder/model-00002-of-00002.safetensors",
            "notes/extra.safetensors",
        ],
    )
    assert got(svd) == [
        "image_encoder/model-00001-of-00002.safetensors",
        "image_encoder/model-00002-of-00002.safetensors",
        "unet/diffusion_pytorch_model.safetensors",
        "vae/diffusion_pytorch_model.fp16.safetensors",
    ]
    sd = folder(
        "sd",
        '{"_class_name": "StableDiffusionPipeline", "unet": ["d", "U"], '
        '"safety_checker": ["t", "S"], "image_encoder": ["t", "C"]}',
        [
            "unet/diffusion_pytorch_model.safetensors",
            "safety_checker/model.safetensors",
            "image_encoder/model.safetensors",
            "vae_tiny/diffusion_pytorch_model.safetensors",
        ],
    )
    assert got(sd) == [
        "unet/diffusion_pytorch_model.safetensors",
        "vae_tiny/diffusion_pytorch_model.safetensors",
    ]
    (svd / "model_index.json").unlink()  # not a pipeline folder: every weight file
    assert len(safetensors_files(svd)) == 7


def test_the_variant_a_component_folder_needs(tmp_path: Path) -> None:
    def folder(*names: str) -> Path:
        f = tmp_path / str(len(list(tmp_path.iterdir())))
        f.mkdir()
        for n in names:
            (f / n).write_bytes(b"x")
        return f

    assert weights_variant(folder("model.safetensors", "model.fp16.safetensors")) is None
    assert weights_variant(folder("diffusion_pytorch_model.fp16.safetensors")) == "fp16"
    assert (
        weights_variant(
            folder("model.bf16-00001-of-00002.safetensors", "model.bf16-00002-of-00002.safetensors")
        )
        == "bf16"
    )
    assert weights_variant(folder()) is None  # nothing to ask for: the loader will say so


# ---- the manager ---------------------------------------------------------------------------


def _weights(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.safetensors").write_bytes(b"0" * 16)
    return folder


def test_models_are_shared_and_evicted_least_recently_used_under_the_budget(tmp_path: Path) -> None:
    import torch

    def loader(path: Path) -> torch.nn.Module:
        return torch.nn.Linear(16, 16, bias=False)  # 1 KiB of float32

    size = 16 * 16 * 4
    mgr = ModelManager(max_models=10, budget_bytes=int(2.5 * size))
    a, b, c = (_weights(tmp_path / n) for n in "abc")
    ma, _ = mgr.get("k", str(a), "cpu", "float32", loader)
    assert mgr.get("k", str(a), "cpu", "float32", loader)[0] is ma and mgr.loads == 1
    mgr.get("k", str(b), "cpu", "float32", loader)
    mgr.get("k", str(a), "cpu", "float32", loader)  # a is now the most recently used
    mgr.get("k", str(c), "cpu", "float32", loader)  # over budget: b goes, not a
    assert [Path(e.key[1]).name for e in mgr.entries()] == ["a", "c"]
    assert mgr.evictions == [("k", str(b.resolve()), "cpu")]
    assert mgr.used("cpu") == 2 * size
    # Another dtype is another entry; free() keeps only what is asked for.
    keep, _ = mgr.get("k", str(a), "cpu", "bfloat16", loader)
    assert mgr.free(keep=keep) >= 1 and [e.model for e in mgr.entries()] == [keep]


def test_model_count_limit_and_sizes() -> None:
    import torch

    lin = torch.nn.Linear(4, 4)
    assert module_nbytes([lin, lin, {"x": lin}]) == (16 + 4) * 4
    assert parse_bytes("1.5GB") == int(1.5 * 1024**3) and parse_bytes("512 mb") == 512 * 1024**2
    with pytest.raises(ValueError):
        parse_bytes("lots")


def test_offload_choice_and_out_of_memory_recognition() -> None:
    import torch

    assert choose_offload(need=4, free=None, largest=3) == "none"  # CPU: nothing to offload
    assert choose_offload(need=4, free=10, largest=3) == "none"
    assert choose_offload(need=8, free=5, largest=3) == "model"
    assert choose_offload(need=8, free=3, largest=3) == "sequential"
    assert is_oom(torch.OutOfMemoryError("CUDA out of memory"))
    assert is_oom(RuntimeError("DefaultCPUAllocator: can't allocate memory"))
    assert not is_oom(RuntimeError("shapes do not match"))


# ---- loading Stable Diffusion models -------------------------------------------------------


def test_a_diffusers_folder_loads_with_its_tiny_autoencoder(tiny_sd: Path) -> None:
    from fathom.engine.models.diffusion import fall_back, load_components

    comps = load_components(tiny_sd, "cpu", "float32")
    assert comps.tiny_vae is not None and comps.offload == "none"
    assert comps.vae_scale_factor == 8 and not comps.is_inpainting
    assert all(not p.requires_grad for p in comps.unet.parameters())
    assert fall_back(comps) == "VAE tiling" and comps.vae_tiling  # CPU: nothing to offload


def test_components_from_other_libraries_are_refused(tmp_path: Path, tiny_sd: Path) -> None:
    from fathom.engine.models.diffusion import load_components

    bad = tmp_path / "remote"
    shutil.copytree(tiny_sd, bad)
    index = json.loads((bad / "model_index.json").read_text())
    index["unet"] = ["my_package", "MyUNet"]
    (bad / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ModelError, match="diffusers and transformers only"):
        load_components(bad, "cpu", "float32")


@pytest.fixture(scope="module")
def single_file(tiny_sd: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model as one original-layout .safetensors checkpoint (what civitai-style files
    look like), with its diffusers configuration in a NAME.config/ folder beside it."""
    from safetensors.torch import save_file

    from fathom.engine.models.diffusion import load_components

    comps = load_components(tiny_sd, "cpu", "float32")
    sd = {
        **unet_to_ldm(comps.unet),
        **vae_to_ldm(comps.vae),
        **clip_to_ldm(comps.text_encoder, "cond_stage_model.transformer."),
    }
    folder = tmp_path_factory.mktemp("single")
    save_file({k: v.contiguous() for k, v in sd.items()}, str(folder / "tiny.safetensors"))
    shutil.copytree(tiny_sd, folder / "tiny.config", ignore=shutil.ignore_patterns("*.safetensors"))
    return folder / "tiny.safetensors"


def test_a_single_safetensors_checkpoint_loads_like_its_folder(
    single_file: Path, tiny_sd: Path
) -> None:
    import torch

    from fathom.engine.models.diffusion import load_components

    a = load_components(tiny_sd, "cpu", "float32")
    b = load_components(single_file, "cpu", "float32")
    for name in ("unet", "vae", "text_encoder"):
        sa, sb = getattr(a, name).state_dict(), getattr(b, name).state_dict()
        assert sa.keys() == sb.keys()
        assert all(torch.equal(sa[k], sb[k]) for k in sa), name


def test_a_single_file_without_its_configuration_says_what_to_pull(
    single_file: Path, tmp_path: Path, no_settings: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alone, an SD 1.x file takes Fathom's shipped SD 1.5 configuration, which lacks only the
    CLIP vocabulary: with none on this machine, the error says which files and how to get
    them (tests/engine/models/test_singlefile.py covers the rest)."""
    from huggingface_hub import constants

    from fathom.engine.models.diffusion import load_components

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    alone = tmp_path / "alone.safetensors"
    shutil.copy(single_file, alone)
    with pytest.raises(ModelError) as err:
        load_components(alone, "cpu", "float32")
    pull = "fathom models pull openai/clip-vit-large-patch14 --configs-only"
    assert pull in str(err.value) and "vocab.json and merges.txt" in str(err.value)
    assert "alone.config" in str(err.value)


# ---- the command line ----------------------------------------------------------------------


def test_models_list_shows_local_models_and_where_it_looked(
    tiny_sd: Path,
    single_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    no_settings: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from fathom.engine.cli import main

    monkeypatch.setenv("FATHOM_MODELS", f"{tiny_sd.parent}:{single_file.parent}")
    entries, places = list_models()
    kinds = {Path(e.path).name: (e.family, e.kind, e.problem) for e in entries}
    assert kinds["model"] == ("sd1", "pipeline", "")
    assert kinds["tiny.safetensors"] == ("sd1", "single file", "")
    assert kinds["tiny.config"][2].startswith("configuration only")
    assert "vocab" not in kinds  # folders that hold no model are not listed
    assert main(["models", "list", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["looked_in"][0]["path"] == str(tiny_sd.parent)
    assert out["looked_in"][0]["origin"] == "FATHOM_MODELS"
    assert out["looked_in"][-1]["origin"] == "Hugging Face cache"
    assert main(["models", "list"]) == 0
    assert "looked in:" in capsys.readouterr().out


def test_models_pull_says_clearly_when_offline(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from huggingface_hub import constants

    from fathom.engine.cli import main

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelError, match="offline"):
        pull_model("org/name")
    assert main(["models", "pull", "org/name"]) == 2
    assert "offline" in capsys.readouterr().err
    with pytest.raises(ModelError, match="not a Hugging Face id"):
        pull_model("just-a-name")


@pytest.mark.gpu
@pytest.mark.parametrize("mode", ["none", "model", "sequential"])
def test_cpu_offload_on_a_gpu_gives_the_same_image(tiny_sd: Path, mode: str) -> None:
    import numpy as np

    from fathom.engine.diffusion.loop import generate
    from fathom.engine.models.diffusion import apply_offload, load_components, settle

    ref = generate(
        load_components(tiny_sd, "cpu", "float32"),
        "a cat",
        steps=2,
        width=64,
        height=64,
        seed=4,
        scheduler="ddim",
    )
    comps = load_components(tiny_sd, "cuda", "float32", offload=mode)
    assert comps.offload == mode
    out = generate(comps, "a cat", steps=2, width=64, height=64, seed=4, scheduler="ddim")
    settle(comps)
    assert np.allclose(out.images, ref.images, atol=1e-3)  # CPU noise: the same image anywhere
    apply_offload(comps, "none")
    assert next(comps.unet.parameters()).device.type == "cuda"


def test_retry_on_oom_lowers_once_then_fails_with_what_changed() -> None:
    from fathom.engine.models.memory import retry_on_oom

    calls: list[str] = []

    def attempt_failing(times: int):
        left = [times]

        def attempt() -> str:
            calls.append("attempt")
            if left[0]:
                left[0] -= 1
                raise MemoryError("no room")
            return "done"

        return attempt

    def lower() -> str:
        calls.append("lower")
        return "VAE tiling"

    assert retry_on_oom(attempt_failing(0), lower, RuntimeError) == ("done", None)
    calls.clear()
    assert retry_on_oom(attempt_failing(1), lower, RuntimeError) == ("done", "VAE tiling")
    assert calls == ["attempt", "lower", "attempt"]
    with pytest.raises(RuntimeError, match="VAE tiling"):
        retry_on_oom(attempt_failing(2), lower, RuntimeError)
    with pytest.raises(ValueError):  # anything else is not retried
        retry_on_oom(lambda: int("x"), lower, RuntimeError)

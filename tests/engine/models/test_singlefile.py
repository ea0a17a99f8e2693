"""Single-file checkpoints load offline: the configurations Fathom ships build the published
models, a checkpoint's tensors choose its configuration, the CLIP vocabulary is found on disk
(or the error names the command that fetches it), and a tiny SDXL checkpoint in the original
layout loads like its diffusers folder."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from ldm_layout import clip_to_ldm, open_clip_to_ldm, unet_to_ldm, vae_to_ldm, write_header_only

from fathom.engine.models import ModelError
from fathom.engine.models.singlefile import (
    CLIP_VOCAB_SIZE,
    CONFIG_ROOT,
    PULL_TOKENIZER,
    SHIPPED,
    TOKENIZER_FILES,
    V_PROBE,
    choose_config,
    find_tokenizer_files,
    read_header,
    single_file_config,
)

# ---- (a) the shipped configurations are the published models ---------------------------------

CLIP_L = 123_060_480  # openai/clip-vit-large-patch14's text model
OPEN_CLIP_H = 340_387_840  # SD 2.x's OpenCLIP ViT-H text model, without its last layer
OPEN_CLIP_BIG_G = 694_659_840  # SDXL's OpenCLIP ViT-bigG text model with its projection
SD_VAE = 83_653_863
SD15_UNET, SD2_UNET, SDXL_UNET = 859_520_964, 865_910_724, 2_567_463_684
#: Parameter counts of the published models, per shipped configuration and component.
PUBLISHED = {
    "sd15": {"unet": SD15_UNET, "vae": SD_VAE, "text_encoder": CLIP_L},
    "sd21": {"unet": SD2_UNET, "vae": SD_VAE, "text_encoder": OPEN_CLIP_H},
    "sd21-base": {"unet": SD2_UNET, "vae": SD_VAE, "text_encoder": OPEN_CLIP_H},
    "sd-turbo": {"unet": SD2_UNET, "vae": SD_VAE, "text_encoder": OPEN_CLIP_H},
    "sdxl-base": {
        "unet": SDXL_UNET,
        "vae": SD_VAE,
        "text_encoder": CLIP_L,
        "text_encoder_2": OPEN_CLIP_BIG_G,
    },
    "sdxl-turbo": {
        "unet": SDXL_UNET,
        "vae": SD_VAE,
        "text_encoder": CLIP_L,
        "text_encoder_2": OPEN_CLIP_BIG_G,
    },
    # The refiner's UNet count is not in the list we check against: its shape is checked below.
    "sdxl-refiner": {"vae": SD_VAE, "text_encoder_2": OPEN_CLIP_BIG_G},
}


def _meta_models(name: str) -> dict:
    """The shipped configuration's models on the meta device: shapes, no weights."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    folder = CONFIG_ROOT / name
    out = {}
    with torch.device("meta"):
        out["unet"] = UNet2DConditionModel.from_config(
            UNet2DConditionModel.load_config(folder / "unet")
        )
        out["vae"] = AutoencoderKL.from_config(AutoencoderKL.load_config(folder / "vae"))
        for sub in ("text_encoder", "text_encoder_2"):
            if (folder / sub).is_dir():
                config = CLIPTextConfig.from_pretrained(folder / sub)
                projected = config.architectures == ["CLIPTextModelWithProjection"]
                out[sub] = (CLIPTextModelWithProjection if projected else CLIPTextModel)(config)
    return out


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_a_shipped_configuration_builds_the_published_model(name: str) -> None:
    models = _meta_models(name)
    counts = {k: sum(p.numel() for p in m.parameters()) for k, m in models.items()}
    for part, published in PUBLISHED[name].items():
        assert counts[part] == published, (name, part)
    index = json.loads((CONFIG_ROOT / name / "model_index.json").read_text())
    loaded = {k for k, v in index.items() if isinstance(v, list) and v[0] is not None}
    assert loaded == set(models) | {"scheduler"} | {
        k.replace("text_encoder", "tokenizer") for k in models if k.startswith("text")
    }


def test_the_refiner_conditions_on_big_g_and_the_aesthetic_score() -> None:
    unet = json.loads((CONFIG_ROOT / "sdxl-refiner" / "unet" / "config.json").read_text())
    # Its only text encoder is OpenCLIP bigG (1280 wide); the added embedding takes the pooled
    # text (1280) and five 256-wide ids (size 2, crop 2, aesthetic score 1).
    assert unet["cross_attention_dim"] == 1280
    assert unet["projection_class_embeddings_input_dim"] == 1280 + 5 * 256
    assert unet["block_out_channels"] == [384, 768, 1536, 1536]


def test_turbo_configurations_are_their_bases_with_a_few_step_schedule() -> None:
    """SD-Turbo and SDXL-Turbo are distilled from SD 2.1 and SDXL: the same architectures (so
    no file can tell them apart), sampled at 512 px with a trailing-spaced Euler ancestral
    scheduler."""

    def read(name: str, rel: str) -> dict:
        return json.loads((CONFIG_ROOT / name / rel).read_text())

    for turbo, base in (("sd-turbo", "sd21-base"), ("sdxl-turbo", "sdxl-base")):
        for part in ("text_encoder", "text_encoder_2"):
            if (CONFIG_ROOT / base / part).is_dir():
                assert read(turbo, f"{part}/config.json") == read(base, f"{part}/config.json")
        unet, base_unet = read(turbo, "unet/config.json"), read(base, "unet/config.json")
        assert unet["sample_size"] == 64  # 512 px
        assert {**unet, "sample_size": 0} == {**base_unet, "sample_size": 0}
        sched = read(turbo, "scheduler/scheduler_config.json")
        assert sched["_class_name"] == "EulerAncestralDiscreteScheduler"
        assert sched["timestep_spacing"] == "trailing"


# ---- real-size checkpoints, header only --------------------------------------------------------

_LDM_SHAPES: dict[str, dict[str, tuple[int, ...]]] = {}


def ldm_shapes(name: str) -> dict[str, tuple[int, ...]]:
    """The original-layout tensor names and shapes of the published model the shipped
    configuration ``name`` describes (what a civitai-style file of it lists)."""
    if name in _LDM_SHAPES:
        return _LDM_SHAPES[name]
    import torch

    m = _meta_models(name)
    sd = {**unet_to_ldm(m["unet"]), **vae_to_ldm(m["vae"])}
    family = SHIPPED[name].family
    if family == "sd1":
        sd.update(clip_to_ldm(m["text_encoder"], "cond_stage_model.transformer."))
    elif family == "sd2":
        prefix = "cond_stage_model.model."
        sd.update(open_clip_to_ldm(m["text_encoder"], prefix))
        # The file holds OpenCLIP's 24th layer and projection, which SD 2.x does not use.
        last = prefix + "transformer.resblocks.22."
        sd.update({k.replace(".22.", ".23."): v for k, v in sd.items() if k.startswith(last)})
        sd[prefix + "text_projection"] = torch.empty((1024, 1024), device="meta")
    elif family == "sdxl":
        sd.update(clip_to_ldm(m["text_encoder"], "conditioner.embedders.0.transformer."))
        sd.update(open_clip_to_ldm(m["text_encoder_2"], "conditioner.embedders.1.model."))
    else:
        sd.update(open_clip_to_ldm(m["text_encoder_2"], "conditioner.embedders.0.model."))
    _LDM_SHAPES[name] = {k: tuple(v.shape) for k, v in sd.items()}
    return _LDM_SHAPES[name]


def fake_checkpoint(
    path: Path,
    name: str,
    in_channels: int = 4,
    metadata: dict[str, str] | None = None,
    extra: dict[str, tuple[int, ...]] | None = None,
    probe_std: float | None = None,
) -> Path:
    """A real-size fp16 checkpoint of the model ``name`` describes, with no weights in it (a
    sparse file: every tensor reads as zeros); ``probe_std`` writes SD 2.x's v-prediction
    probe tensor with that spread."""
    shapes = dict(ldm_shapes(name))
    conv_in = "model.diffusion_model.input_blocks.0.0.weight"
    shapes[conv_in] = (shapes[conv_in][0], in_channels, *shapes[conv_in][2:])
    shapes.update(extra or {})
    values = {}
    if probe_std is not None:
        n = shapes[V_PROBE][0]
        rng = np.random.default_rng(0)
        values[V_PROBE] = (rng.standard_normal(n) * probe_std).astype(np.float16).tobytes()
    return write_header_only(path, shapes, metadata, values)


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No models folders, an empty Hugging Face cache, Fathom's cache in tmp_path, no network."""
    from huggingface_hub import constants

    monkeypatch.setenv("FATHOM_SETTINGS", str(tmp_path / "absent.conf"))
    monkeypatch.delenv("FATHOM_MODELS", raising=False)
    monkeypatch.setenv("FATHOM_CACHE_DIR", str(tmp_path / "fathom-cache"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return tmp_path


def write_clip_vocabulary(folder: Path) -> Path:
    """A stand-in for CLIP's vocabulary files: the byte-level vocabulary the mini models use,
    padded with filler tokens to CLIP's 49408 entries, its start and end tokens last."""
    from fathom.engine.diffusion.minimodels import write_tokenizer_files

    write_tokenizer_files(folder)
    vocab = json.loads((folder / "vocab.json").read_text("utf-8"))
    specials = ["<|startoftext|>", "<|endoftext|>"]
    for token in specials:
        del vocab[token]
    filler = 0
    while len(vocab) < CLIP_VOCAB_SIZE - len(specials):
        vocab[f"filler{filler}</w>"] = len(vocab)
        filler += 1
    for token in specials:
        vocab[token] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    return folder


def hub_snapshot(cache: Path, repo: str, sub: str = "") -> Path:
    """Where huggingface_hub's cache keeps ``repo``'s files (``sub`` inside the snapshot)."""
    root = cache / ("models--" + repo.replace("/", "--"))
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text("0123abcd" * 5)
    return root / "snapshots" / ("0123abcd" * 5) / sub


# ---- choosing the configuration ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "family"),
    [("sd15", "sd1"), ("sdxl-base", "sdxl"), ("sdxl-refiner", "sdxl-refiner")],
)
def test_the_checkpoints_tensors_choose_the_shipped_configuration(
    tmp_path: Path, name: str, family: str
) -> None:
    from fathom.engine.models.families import identify

    path = fake_checkpoint(tmp_path / "model.safetensors", name)
    assert path.stat().st_size > 2 * 10**9  # as large as the real file
    info = identify(path)
    assert (info.family, info.kind) == (family, "single file")
    choice = choose_config(path, read_header(path), family)
    assert choice is not None and choice.name == name and choice.patches == {}


def test_sd2_v_prediction_or_base_is_told_from_the_file(tmp_path: Path) -> None:
    def chosen(**kwargs: object) -> str:
        path = fake_checkpoint(tmp_path / "sd2.safetensors", "sd21", **kwargs)
        choice = choose_config(path, read_header(path), "sd2")
        assert choice is not None
        return choice.name

    assert chosen(probe_std=0.2) == "sd21"  # ComfyUI's test on the weights
    assert chosen(probe_std=0.02) == "sd21-base"
    assert chosen() == "sd21-base"  # a bias of zeros has no spread
    assert chosen(extra={"v_pred": (0,)}, probe_std=0.02) == "sd21"  # a marker outranks it
    assert chosen(metadata={"modelspec.prediction_type": "epsilon"}, probe_std=0.2) == "sd21-base"
    spec = {"modelspec.architecture": "stable-diffusion-v2-768-v"}
    assert chosen(metadata=spec, probe_std=0.02) == "sd21"


def test_inpainting_and_v_prediction_checkpoints_patch_their_base(tmp_path: Path) -> None:
    path = fake_checkpoint(tmp_path / "inpaint.safetensors", "sd15", in_channels=9)
    choice = choose_config(path, read_header(path), "sd1")
    assert choice is not None and choice.name == "sd15"
    assert choice.patches == {"unet/config.json": {"in_channels": 9}}
    path = fake_checkpoint(tmp_path / "vpred.safetensors", "sdxl-base", extra={"v_pred": (0,)})
    choice = choose_config(path, read_header(path), "sdxl")
    assert choice is not None and choice.name == "sdxl-base"
    assert choice.patches == {
        "scheduler/scheduler_config.json": {"prediction_type": "v_prediction"}
    }


def test_a_hint_file_picks_turbo_and_a_wrong_hint_says_which_fit(
    offline: Path, tmp_path: Path
) -> None:
    write_clip_vocabulary(hub_snapshot(offline / "hf-cache", "openai/clip-vit-large-patch14"))
    path = fake_checkpoint(tmp_path / "sd_xl_turbo_1.0.safetensors", "sdxl-base")
    path.with_suffix(".config").write_text("# the weights look like SDXL base\nsdxl-turbo\n")
    folder = single_file_config(path)
    sched = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    assert folder.name.startswith("sdxl-turbo-") and sched["timestep_spacing"] == "trailing"
    path.with_suffix(".config").write_text("stabilityai/sdxl-turbo")  # the hub id works too
    assert single_file_config(path) == folder
    path.with_suffix(".config").write_text("sd-turbo\n")
    with pytest.raises(ModelError) as err:
        single_file_config(path)
    assert "SDXL-Turbo" not in str(err.value) and "sdxl-base, sdxl-turbo" in str(err.value)
    assert "SD-Turbo" in str(err.value) and "sd_xl_turbo_1.0.config" in str(err.value)


def test_the_catalog_sees_a_turbo_hint_as_one_step(tmp_path: Path) -> None:
    from fathom.engine.models.families import identify

    path = fake_checkpoint(tmp_path / "sd_xl_turbo_1.0.safetensors", "sdxl-base")
    assert identify(path).family == "sdxl" and not identify(path).one_step
    path.with_suffix(".config").write_text("# the weights look like SDXL base\nsdxl-turbo\n")
    assert identify(path).family == "sdxl" and identify(path).one_step


# ---- the resolution order ----------------------------------------------------------------------


def test_a_configuration_beside_the_file_comes_before_the_shipped_one(
    offline: Path, tmp_path: Path
) -> None:
    write_clip_vocabulary(hub_snapshot(offline / "hf-cache", "openai/clip-vit-large-patch14"))
    path = fake_checkpoint(tmp_path / "anime.safetensors", "sd15")
    shipped = single_file_config(path)  # no configuration beside it: the shipped SD 1.5 one
    assert shipped.parent == offline / "fathom-cache" / "single-file-configs"
    assert shipped.name.startswith("sd15-")
    for rel in ("model_index.json", "unet/config.json", "tokenizer/tokenizer_config.json"):
        assert (shipped / rel).read_bytes() == (CONFIG_ROOT / "sd15" / rel).read_bytes()
    assert single_file_config(path) == shipped  # put together once
    side = tmp_path / "anime.config"
    shutil.copytree(CONFIG_ROOT / "sd21", side)
    assert single_file_config(path) == side  # beside the file: used as it is


@pytest.mark.parametrize(
    ("repo", "sub"),
    [
        ("openai/clip-vit-large-patch14", ""),
        ("openai/clip-vit-large-patch14", "tokenizer"),
        ("laion/CLIP-ViT-bigG-14-laion2B-39B-b160k", ""),
        ("stabilityai/stable-diffusion-2-1", "tokenizer"),
        ("stabilityai/stable-diffusion-xl-base-1.0", "tokenizer_2"),
    ],
)
def test_the_tokenizer_files_are_found_in_the_hugging_face_cache(
    offline: Path, tmp_path: Path, repo: str, sub: str
) -> None:
    path = fake_checkpoint(tmp_path / "model.safetensors", "sd15")
    found = write_clip_vocabulary(hub_snapshot(offline / "hf-cache", repo, sub))
    assert find_tokenizer_files(path) == found
    folder = single_file_config(path)
    for name in TOKENIZER_FILES:
        assert (folder / "tokenizer" / name).read_bytes() == (found / name).read_bytes()


def test_the_tokenizer_files_are_found_beside_in_models_folders_then_in_the_hub_cache(
    offline: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = fake_checkpoint(tmp_path / "model.safetensors", "sdxl-base")
    hub = offline / "hf-cache"
    xl = write_clip_vocabulary(
        hub_snapshot(hub, "stabilityai/stable-diffusion-xl-base-1.0", "tokenizer_2")
    )
    assert find_tokenizer_files(path) == xl  # a stabilityai repo's tokenizer folder
    clip = write_clip_vocabulary(hub_snapshot(hub, "openai/clip-vit-large-patch14"))
    assert find_tokenizer_files(path) == clip  # the repo the error asks to pull comes first
    models = tmp_path / "models"
    pulled = write_clip_vocabulary(hub_snapshot(models, "openai/clip-vit-large-patch14"))
    monkeypatch.setenv("FATHOM_MODELS", str(models))
    assert find_tokenizer_files(path) == pulled  # `fathom models pull` into a models folder
    folder = write_clip_vocabulary(models / "my-sd15" / "tokenizer")
    assert find_tokenizer_files(path) == folder  # any SD diffusers folder in a models folder
    beside = write_clip_vocabulary(tmp_path / "model.config" / "tokenizer")
    assert find_tokenizer_files(path) == beside
    assert single_file_config(path).name.startswith("sdxl-base-")  # (a folder with no
    # model_index.json beside the file only lends its tokenizer files)


def test_a_vocabulary_that_is_not_clips_is_passed_over(offline: Path, tmp_path: Path) -> None:
    """A mini model's byte-level vocabulary (or another tokenizer's vocab.json) would turn
    every prompt into the wrong tokens for a real text encoder."""
    from fathom.engine.diffusion.minimodels import write_tokenizer_files

    path = fake_checkpoint(tmp_path / "model.safetensors", "sd15")
    write_tokenizer_files(tmp_path / "model.config" / "tokenizer")
    assert find_tokenizer_files(path) is None
    real = write_clip_vocabulary(
        hub_snapshot(offline / "hf-cache", "openai/clip-vit-large-patch14")
    )
    assert find_tokenizer_files(path) == real


def test_without_the_tokenizer_files_the_error_names_them_and_the_command(
    offline: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fathom.engine.models.diffusion import load_components

    monkeypatch.setenv("FATHOM_MODELS", str(tmp_path / "models"))
    path = fake_checkpoint(tmp_path / "dreamshaper_8.safetensors", "sd15")
    with pytest.raises(ModelError) as err:
        load_components(path, "cpu", "float32")  # the user's path: fails before any weights
    text = str(err.value)
    assert all(f in text for f in TOKENIZER_FILES) and f"`{PULL_TOKENIZER}`" in text
    assert "SD 1.5" in text and str(tmp_path / "dreamshaper_8.config") in text
    for place in (tmp_path / "models", offline / "hf-cache"):
        assert str(place) in text
    assert not (offline / "fathom-cache").exists()  # nothing half-made was left behind


def test_pickle_checkpoints_stay_refused(offline: Path, tmp_path: Path) -> None:
    """A .ckpt is never opened: loading a pickle can run any code it holds."""
    from fathom.engine.models import ModelManager
    from fathom.engine.models.diffusion import loader

    ckpt = tmp_path / "v1-5-pruned-emaonly.ckpt"
    ckpt.write_bytes(b"PK\x03\x04 (a zip of pickles; never read)")
    with pytest.raises(ModelError, match="pickle checkpoint") as err:
        single_file_config(ckpt)
    assert "save_pretrained" in str(err.value)  # how to convert it, where the user trusts it
    with pytest.raises(ModelError, match="pickle checkpoint"):
        ModelManager().get("diffusers-sd", str(ckpt), "cpu", "float32", loader("cpu", "float32"))


def test_the_command_in_the_error_fetches_the_tokenizer_files() -> None:
    """``fathom models pull openai/clip-vit-large-patch14 --configs-only`` selects the two
    files from that repository's listing (and no weights)."""
    from fathom.engine.models.pull import select_files

    listing = [
        ".gitattributes",
        "README.md",
        "config.json",
        "flax_model.msgpack",
        "merges.txt",
        "model.safetensors",
        "preprocessor_config.json",
        "pytorch_model.bin",
        "special_tokens_map.json",
        "tf_model.h5",
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.json",
    ]
    assert PULL_TOKENIZER.split()[3:] == ["openai/clip-vit-large-patch14", "--configs-only"]
    chosen = select_files(listing, configs_only=True)
    assert set(TOKENIZER_FILES) <= set(chosen)
    assert not any(f.endswith((".safetensors", ".bin", ".h5", ".msgpack")) for f in chosen)


@pytest.mark.parametrize("name", ["sd21", "sdxl-base"])
def test_the_assembled_configuration_reads_as_the_published_pipeline(
    offline: Path, tmp_path: Path, name: str
) -> None:
    """Everything diffusers' single-file loader reads from the configuration folder, read from
    the assembled one: the pipeline index, the scheduler, the text encoders' configurations and
    the tokenizers (SD 2.x and SDXL's second tokenizer pad with '!', as OpenCLIP did)."""
    import diffusers
    from transformers import CLIPTextConfig, CLIPTokenizer

    write_clip_vocabulary(hub_snapshot(offline / "hf-cache", "openai/clip-vit-large-patch14"))
    probe = 0.2 if name == "sd21" else None  # a v-prediction SD 2.x file
    folder = single_file_config(fake_checkpoint(tmp_path / "m.safetensors", name, probe_std=probe))
    pipe_cls = (
        diffusers.StableDiffusionXLPipeline if "xl" in name else diffusers.StableDiffusionPipeline
    )
    index = pipe_cls.load_config(folder)
    sched_cls = getattr(diffusers, index["scheduler"][1])
    sched = sched_cls.from_pretrained(folder, subfolder="scheduler")
    pads = {"tokenizer": "<|endoftext|>" if "xl" in name else "!", "tokenizer_2": "!"}
    for sub, pad in pads.items():
        if not (folder / sub).is_dir():
            continue
        tok = CLIPTokenizer.from_pretrained(folder, subfolder=sub, local_files_only=True)
        assert (len(tok), tok.model_max_length, tok.pad_token) == (CLIP_VOCAB_SIZE, 77, pad)
        ids = tok("a cat", padding="max_length").input_ids
        assert (ids[0], ids[-1]) == (49406, tok.pad_token_id) and len(ids) == 77
        text = CLIPTextConfig.from_pretrained(
            folder, subfolder=sub.replace("tokenizer", "text_encoder")
        )
        assert text.vocab_size == CLIP_VOCAB_SIZE
    expected = "v_prediction" if name == "sd21" else "epsilon"
    assert sched.config.prediction_type == expected


# ---- loading through the user's code path ------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "sd15",
        *(
            pytest.param(name, marks=pytest.mark.slow)
            for name in ("sd21", "sd21-base", "sd-turbo", "sdxl-base", "sdxl-turbo", "sdxl-refiner")
        ),
    ],
)
def test_a_real_size_checkpoint_loads_offline_with_the_shipped_configuration(
    offline: Path, tmp_path: Path, name: str
) -> None:
    """A checkpoint with every tensor of the real model (zeros: a sparse file, memory-mapped, so
    this stays light) loads through load_components with no configuration beside it and no
    network: names, shapes and configurations agree; the pictures would be grey. The Turbo
    models are named by a hint file, SD 2.x's prediction is read from the weights."""
    from fathom.engine.models.diffusion import load_components

    write_clip_vocabulary(hub_snapshot(offline / "hf-cache", "openai/clip-vit-large-patch14"))
    probe = {"sd21": 0.2, "sd21-base": 0.02}.get(name)
    path = fake_checkpoint(tmp_path / "m.safetensors", name, probe_std=probe)
    if "turbo" in name:
        path.with_suffix(".config").write_text(name + "\n")
    comps = load_components(path, "cpu", "float16")
    for part, published in PUBLISHED[name].items():
        assert sum(p.numel() for p in getattr(comps, part).parameters()) == published, part
    shipped = CONFIG_ROOT / name
    index = json.loads((shipped / "model_index.json").read_text())
    sched = json.loads((shipped / "scheduler" / "scheduler_config.json").read_text())
    assert type(comps.scheduler).__name__ == index["scheduler"][1]
    assert comps.scheduler.config.prediction_type == sched.get("prediction_type", "epsilon")
    assert comps.scheduler.config.timestep_spacing == sched.get("timestep_spacing", "leading")
    unet = json.loads((shipped / "unet" / "config.json").read_text())
    assert comps.unet.config.sample_size == unet["sample_size"]
    assert comps.family == SHIPPED[name].family


@pytest.fixture(scope="module")
def tiny_xl_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny SDXL folder and the same model as one original-layout checkpoint (what an SDXL
    file from civitai looks like: UNet, VAE, CLIP-L and OpenCLIP bigG in their original names),
    its diffusers configuration in NAME.config/ beside it. The conftest's ``tiny_sdxl`` has two
    text encoders of one width; reading a single file, diffusers tells SDXL's encoders apart by
    their widths (768 and 1280 in the real model), so this one's second encoder is 48 wide."""
    from safetensors.torch import save_file

    from fathom.engine.diffusion.minimodels import TINY_XL, save_model
    from fathom.engine.models.diffusion import load_components

    root = tmp_path_factory.mktemp("tiny_xl_single")
    folder = save_model(root / "model", replace(TINY_XL, text_widths=(32, 48)))
    comps = load_components(folder, "cpu", "float32")
    sd = {
        **unet_to_ldm(comps.unet),
        **vae_to_ldm(comps.vae),
        **clip_to_ldm(comps.text_encoder, "conditioner.embedders.0.transformer."),
        **open_clip_to_ldm(comps.text_encoder_2, "conditioner.embedders.1.model."),
    }
    path = root / "tiny_xl.safetensors"
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    shutil.copytree(folder, root / "tiny_xl.config", ignore=shutil.ignore_patterns("*.safetensors"))
    return folder, path


def test_a_tiny_sdxl_checkpoint_in_the_original_layout_loads_like_its_folder(
    tiny_xl_checkpoint: tuple[Path, Path],
) -> None:
    import torch

    from fathom.engine.models.diffusion import load_components

    folder, path = tiny_xl_checkpoint
    a = load_components(folder, "cpu", "float32")
    b = load_components(path, "cpu", "float32")
    assert b.family == "sdxl" and b.force_zeros == a.force_zeros
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        sa, sb = getattr(a, name).state_dict(), getattr(b, name).state_dict()
        assert sa.keys() == sb.keys(), name
        assert all(torch.equal(sa[k], sb[k]) for k in sa), name
    # The same outputs for the same inputs, through every part.
    ids = a.tokenizer("a lighthouse at dusk", padding="max_length", return_tensors="pt").input_ids
    assert torch.equal(
        ids,
        b.tokenizer("a lighthouse at dusk", padding="max_length", return_tensors="pt").input_ids,
    )
    with torch.no_grad():
        outs = []
        for c in (a, b):
            one = c.text_encoder(ids, output_hidden_states=True).hidden_states[-2]
            two = c.text_encoder_2(ids, output_hidden_states=True)
            cond = torch.cat([one, two.hidden_states[-2]], dim=-1)
            added = {
                "text_embeds": two.text_embeds,
                "time_ids": torch.tensor([[64.0, 64, 0, 0, 64, 64]]),
            }
            latents = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(0))
            noise = c.unet(latents, 500, encoder_hidden_states=cond, added_cond_kwargs=added).sample
            outs.append((cond, noise, c.vae.decode(noise).sample))
    # Bit-equal weights; outputs to float32 rounding: here even a deep copy of one UNet differs
    # from it by ~5e-7 (the CPU kernels' paths follow the tensors' memory alignment).
    for x, y in zip(outs[0], outs[1], strict=True):
        assert torch.allclose(x, y, rtol=1e-5, atol=1e-5)

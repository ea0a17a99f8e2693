"""`fathom models pull` fetches only what the loader reads: one precision, no single-file copies
beside a pipeline, no pickle or other frameworks' weights, configs and tokenizers always.

The repository file lists below are recorded from the public repositories' file lists on the
Hugging Face hub (their "Files" tabs), so the selection is tested on what a pull really meets.
The network itself is never reached: the hub client is replaced at its boundary
(``list_repo_files``, ``snapshot_download``) to check what a pull asks it for.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fathom.engine.errors import Cancelled
from fathom.engine.models.locate import ModelError
from fathom.engine.models.pull import PullProgress, pickle_only_parts, pull_model, select_files

# ---- recorded repository file lists --------------------------------------------------------------

SD15_ID = "stable-diffusion-v1-5/stable-diffusion-v1-5"
SD15 = """
.gitattributes
README.md
feature_extractor/preprocessor_config.json
model_index.json
safety_checker/config.json
safety_checker/flax_model.msgpack
safety_checker/model.fp16.safetensors
safety_checker/model.safetensors
safety_checker/pytorch_model.bin
safety_checker/pytorch_model.fp16.bin
scheduler/scheduler_config.json
text_encoder/config.json
text_encoder/flax_model.msgpack
text_encoder/model.fp16.safetensors
text_encoder/model.safetensors
text_encoder/pytorch_model.bin
text_encoder/pytorch_model.fp16.bin
tokenizer/merges.txt
tokenizer/special_tokens_map.json
tokenizer/tokenizer_config.json
tokenizer/vocab.json
unet/config.json
unet/diffusion_flax_model.msgpack
unet/diffusion_pytorch_model.bin
unet/diffusion_pytorch_model.fp16.bin
unet/diffusion_pytorch_model.fp16.safetensors
unet/diffusion_pytorch_model.non_ema.bin
unet/diffusion_pytorch_model.non_ema.safetensors
unet/diffusion_pytorch_model.safetensors
v1-5-pruned-emaonly.ckpt
v1-5-pruned-emaonly.safetensors
v1-5-pruned.ckpt
v1-5-pruned.safetensors
v1-inference.yaml
vae/config.json
vae/diffusion_flax_model.msgpack
vae/diffusion_pytorch_model.bin
vae/diffusion_pytorch_model.fp16.bin
vae/diffusion_pytorch_model.fp16.safetensors
vae/diffusion_pytorch_model.safetensors
""".split()
SD15_INDEX = {
    "_class_name": "StableDiffusionPipeline",
    "_diffusers_version": "0.6.0",
    "feature_extractor": ["transformers", "CLIPImageProcessor"],
    "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"],
    "scheduler": ["diffusers", "PNDMScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}

SDXL_ID = "stabilityai/stable-diffusion-xl-base-1.0"
SDXL = """
.gitattributes
01.png
LICENSE.md
README.md
comparison.png
model_index.json
pipeline.png
scheduler/scheduler_config.json
sd_xl_base_1.0.safetensors
sd_xl_base_1.0_0.9vae.safetensors
sd_xl_offset_example-lora_1.0.safetensors
text_encoder/config.json
text_encoder/flax_model.msgpack
text_encoder/model.fp16.safetensors
text_encoder/model.onnx
text_encoder/model.safetensors
text_encoder/openvino_model.bin
text_encoder/openvino_model.xml
text_encoder_2/config.json
text_encoder_2/flax_model.msgpack
text_encoder_2/model.fp16.safetensors
text_encoder_2/model.onnx
text_encoder_2/model.onnx_data
text_encoder_2/model.safetensors
text_encoder_2/openvino_model.bin
text_encoder_2/openvino_model.xml
tokenizer/merges.txt
tokenizer/special_tokens_map.json
tokenizer/tokenizer_config.json
tokenizer/vocab.json
tokenizer_2/merges.txt
tokenizer_2/special_tokens_map.json
tokenizer_2/tokenizer_config.json
tokenizer_2/vocab.json
unet/config.json
unet/diffusion_flax_model.msgpack
unet/diffusion_pytorch_model.fp16.safetensors
unet/diffusion_pytorch_model.safetensors
unet/model.onnx
unet/model.onnx_data
unet/openvino_model.bin
unet/openvino_model.xml
vae/config.json
vae/diffusion_flax_model.msgpack
vae/diffusion_pytorch_model.fp16.safetensors
vae/diffusion_pytorch_model.safetensors
vae_1_0/config.json
vae_1_0/diffusion_pytorch_model.fp16.safetensors
vae_1_0/diffusion_pytorch_model.safetensors
vae_decoder/config.json
vae_decoder/model.onnx
vae_decoder/openvino_model.bin
vae_decoder/openvino_model.xml
vae_encoder/config.json
vae_encoder/model.onnx
vae_encoder/openvino_model.bin
vae_encoder/openvino_model.xml
""".split()
SDXL_INDEX = {
    "_class_name": "StableDiffusionXLPipeline",
    "_diffusers_version": "0.19.0.dev0",
    "force_zeros_for_empty_prompt": True,
    "add_watermarker": None,
    "scheduler": ["diffusers", "EulerDiscreteScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "tokenizer_2": ["transformers", "CLIPTokenizer"],
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}

SVD_ID = "stabilityai/stable-video-diffusion-img2vid-xt"
SVD = """
.gitattributes
LICENSE
README.md
feature_extractor/preprocessor_config.json
image_encoder/config.json
image_encoder/model.fp16.safetensors
image_encoder/model.safetensors
model_index.json
output_tile.gif
scheduler/scheduler_config.json
svd_xt.safetensors
svd_xt_image_decoder.safetensors
unet/config.json
unet/diffusion_pytorch_model.fp16.safetensors
unet/diffusion_pytorch_model.safetensors
vae/config.json
vae/diffusion_pytorch_model.fp16.safetensors
vae/diffusion_pytorch_model.safetensors
""".split()
SVD_INDEX = {
    "_class_name": "StableVideoDiffusionPipeline",
    "_diffusers_version": "0.24.0.dev0",
    "feature_extractor": ["transformers", "CLIPImageProcessor"],
    "image_encoder": ["transformers", "CLIPVisionModelWithProjection"],
    "scheduler": ["diffusers", "EulerDiscreteScheduler"],
    "unet": ["diffusers", "UNetSpatioTemporalConditionModel"],
    "vae": ["diffusers", "AutoencoderKLTemporalDecoder"],
}

TURBO_ID = "stabilityai/sdxl-turbo"
TURBO = """
.gitattributes
LICENSE.md
README.md
image_0.png
model_index.json
scheduler/scheduler_config.json
sd_xl_turbo_1.0.safetensors
sd_xl_turbo_1.0_fp16.safetensors
text_encoder/config.json
text_encoder/model.fp16.safetensors
text_encoder/model.safetensors
text_encoder_2/config.json
text_encoder_2/model.fp16.safetensors
text_encoder_2/model.safetensors
tokenizer/merges.txt
tokenizer/special_tokens_map.json
tokenizer/tokenizer_config.json
tokenizer/vocab.json
tokenizer_2/merges.txt
tokenizer_2/special_tokens_map.json
tokenizer_2/tokenizer_config.json
tokenizer_2/vocab.json
unet/config.json
unet/diffusion_pytorch_model.fp16.safetensors
unet/diffusion_pytorch_model.safetensors
vae/config.json
vae/diffusion_pytorch_model.fp16.safetensors
vae/diffusion_pytorch_model.safetensors
""".split()
TURBO_INDEX = {**SDXL_INDEX, "_diffusers_version": "0.24.0.dev0"}

LORA_ID = "latent-consistency/lcm-lora-sdv1-5"
LORA = """
.gitattributes
README.md
image.png
pytorch_lora_weights.safetensors
""".split()

CONTROLNET_ID = "lllyasviel/control_v11p_sd15_canny"
CONTROLNET = """
.gitattributes
README.md
config.json
diffusion_pytorch_model.bin
diffusion_pytorch_model.fp16.bin
diffusion_pytorch_model.fp16.safetensors
diffusion_pytorch_model.safetensors
images/control.png
images/image_out.png
images/input.png
""".split()

DEPTH_ID = "depth-anything/Depth-Anything-V2-Small-hf"
DEPTH = """
.gitattributes
README.md
config.json
model.safetensors
preprocessor_config.json
""".split()

# A repository of pickle checkpoints only (ControlNet 1.1's original release).
PICKLES_ID = "lllyasviel/ControlNet-v1-1"
PICKLES = """
.gitattributes
README.md
control_v11e_sd15_ip2p.pth
control_v11e_sd15_ip2p.yaml
control_v11p_sd15_canny.pth
control_v11p_sd15_canny.yaml
""".split()

TOKENIZERS = ["merges.txt", "special_tokens_map.json", "tokenizer_config.json", "vocab.json"]


def _in(folder: str, *names: str) -> list[str]:
    return [f"{folder}/{n}" for n in names]


# ---- the selection -------------------------------------------------------------------------------


def test_sd15_gets_the_plain_weights_of_the_parts_its_pipeline_loads() -> None:
    got = select_files(SD15, None, SD15_INDEX)
    assert got == sorted(
        [
            "model_index.json",
            "v1-inference.yaml",
            "feature_extractor/preprocessor_config.json",
            "safety_checker/config.json",
            "scheduler/scheduler_config.json",
            *_in("text_encoder", "config.json", "model.safetensors"),
            *_in("tokenizer", *TOKENIZERS),
            *_in("unet", "config.json", "diffusion_pytorch_model.safetensors"),
            *_in("vae", "config.json", "diffusion_pytorch_model.safetensors"),
        ]
    )
    # Not the 4 GB and 7 GB single-file copies, the non-EMA UNet, the safety checker's
    # weights, pickle or Flax files.
    assert not [f for f in got if f.endswith((".ckpt", ".bin", ".msgpack"))]
    assert "v1-5-pruned.safetensors" not in got and "safety_checker/model.safetensors" not in got


def test_fp16_picks_the_half_precision_file_of_each_part() -> None:
    got = select_files(SD15, "fp16", SD15_INDEX)
    weights = [f for f in got if f.endswith(".safetensors")]
    assert weights == [
        "text_encoder/model.fp16.safetensors",
        "unet/diffusion_pytorch_model.fp16.safetensors",
        "vae/diffusion_pytorch_model.fp16.safetensors",
    ]
    assert _in("tokenizer", *TOKENIZERS)[0] in got  # configs and tokenizers always


def test_a_part_without_fp16_falls_back_to_its_plain_file() -> None:
    """Derived from the SD 1.5 list: its VAE's half-precision copy removed."""
    files = [f for f in SD15 if f != "vae/diffusion_pytorch_model.fp16.safetensors"]
    weights = [f for f in select_files(files, "fp16", SD15_INDEX) if f.endswith(".safetensors")]
    assert weights == [
        "text_encoder/model.fp16.safetensors",
        "unet/diffusion_pytorch_model.fp16.safetensors",
        "vae/diffusion_pytorch_model.safetensors",
    ]


def test_sdxl_skips_its_spare_autoencoder_and_onnx_and_openvino_exports() -> None:
    got = select_files(SDXL, None, SDXL_INDEX)
    assert got == sorted(
        [
            "model_index.json",
            "scheduler/scheduler_config.json",
            *_in("text_encoder", "config.json", "model.safetensors"),
            *_in("text_encoder_2", "config.json", "model.safetensors"),
            *_in("tokenizer", *TOKENIZERS),
            *_in("tokenizer_2", *TOKENIZERS),
            *_in("unet", "config.json", "diffusion_pytorch_model.safetensors"),
            *_in("vae", "config.json", "diffusion_pytorch_model.safetensors"),
        ]
    )
    # The index is what tells the spare vae_1_0/ apart from a part: without it, a folder with
    # a config counts as a part (what a pull asks for before it has read the index).
    assert "vae_1_0/diffusion_pytorch_model.safetensors" in select_files(SDXL, None, None)


def test_svd_skips_the_single_file_copies_beside_its_diffusers_folders() -> None:
    got = select_files(SVD, None, SVD_INDEX)
    assert "svd_xt.safetensors" not in got and "svd_xt_image_decoder.safetensors" not in got
    assert [f for f in got if f.endswith(".safetensors")] == [
        "image_encoder/model.safetensors",  # video is conditioned through its image encoder
        "unet/diffusion_pytorch_model.safetensors",
        "vae/diffusion_pytorch_model.safetensors",
    ]
    assert "feature_extractor/preprocessor_config.json" in got
    assert "svd_xt.safetensors" not in select_files(SVD, None, None)  # even before the index


def test_sdxl_turbo_in_fp16() -> None:
    got = select_files(TURBO, "fp16", TURBO_INDEX)
    assert [f for f in got if f.endswith(".safetensors")] == [
        "text_encoder/model.fp16.safetensors",
        "text_encoder_2/model.fp16.safetensors",
        "unet/diffusion_pytorch_model.fp16.safetensors",
        "vae/diffusion_pytorch_model.fp16.safetensors",
    ]
    assert not [f for f in got if f.startswith("sd_xl_turbo")]
    assert len([f for f in got if f.startswith("tokenizer")]) == 8


def test_single_models_lora_controlnet_and_depth() -> None:
    assert select_files(LORA) == ["pytorch_lora_weights.safetensors"]
    assert select_files(CONTROLNET) == ["config.json", "diffusion_pytorch_model.safetensors"]
    assert select_files(CONTROLNET, "fp16") == [
        "config.json",
        "diffusion_pytorch_model.fp16.safetensors",
    ]
    assert select_files(DEPTH) == ["config.json", "model.safetensors", "preprocessor_config.json"]
    assert select_files(DEPTH, "fp16") == select_files(DEPTH)  # nothing in fp16: the plain file
    assert select_files(DEPTH, configs_only=True) == ["config.json", "preprocessor_config.json"]


def test_shards_and_their_index_follow_the_chosen_precision() -> None:
    """Sharded weights (a large text encoder's) come with an index per precision."""
    files = [
        "model_index.json",
        "text_encoder_3/config.json",
        "text_encoder_3/model-00001-of-00002.safetensors",
        "text_encoder_3/model-00002-of-00002.safetensors",
        "text_encoder_3/model.safetensors.index.json",
        "text_encoder_3/model.fp16-00001-of-00002.safetensors",
        "text_encoder_3/model.fp16-00002-of-00002.safetensors",
        "text_encoder_3/model.safetensors.index.fp16.json",
        "text_encoder_3/pytorch_model.bin.index.json",
    ]
    index = {"_class_name": "StableDiffusion3Pipeline", "text_encoder_3": ["t", "T5"]}
    assert select_files(files, None, index)[1:] == [
        "text_encoder_3/config.json",
        "text_encoder_3/model-00001-of-00002.safetensors",
        "text_encoder_3/model-00002-of-00002.safetensors",
        "text_encoder_3/model.safetensors.index.json",
    ]
    assert select_files(files, "fp16", index)[1:] == [
        "text_encoder_3/config.json",
        "text_encoder_3/model.fp16-00001-of-00002.safetensors",
        "text_encoder_3/model.fp16-00002-of-00002.safetensors",
        "text_encoder_3/model.safetensors.index.fp16.json",
    ]


def test_a_repository_of_pickles_only_is_refused_before_downloading() -> None:
    chosen = select_files(PICKLES)
    assert chosen == ["control_v11e_sd15_ip2p.yaml", "control_v11p_sd15_canny.yaml"]
    assert pickle_only_parts(PICKLES, chosen) == [""]
    # A pipeline part shipped only as pickle is named; parts the pipeline skips are not.
    files = [f for f in SD15 if f != "unet/diffusion_pytorch_model.safetensors"]
    files = [f for f in files if not f.startswith("unet/") or f.endswith((".json", ".bin"))]
    assert pickle_only_parts(files, select_files(files, None, SD15_INDEX), SD15_INDEX) == ["unet"]
    assert pickle_only_parts(SD15, select_files(SD15, None, SD15_INDEX), SD15_INDEX) == []


# ---- the download, with the hub client replaced at its boundary ----------------------------------


class FakeHub:
    """Stands in for huggingface_hub's listing and download: records what it is asked for,
    writes the files it is asked for, and reports progress through the tqdm class it is given
    the way snapshot_download does (a files bar, and a bytes bar that downloads add to)."""

    def __init__(self, root: Path, files: list[str], index: dict[str, Any] | None) -> None:
        self.root, self.files, self.index = root, files, index
        self.calls: list[dict[str, Any]] = []

    def list_repo_files(self, repo_id: str, revision: str | None = None, **_: Any) -> list[str]:
        return list(self.files)

    def snapshot_download(self, repo_id: str, **kwargs: Any) -> str:
        self.calls.append({"repo_id": repo_id, **kwargs})
        snap = self.root / repo_id.replace("/", "--")
        wanted = kwargs.get("allow_patterns") or self.files
        bar_class = kwargs.get("tqdm_class")
        files_bar = bar_class(total=len(wanted), desc="Fetching") if bar_class else None
        bytes_bar = bar_class(total=0, unit="B", desc="Reconstructing") if bar_class else None
        for name in wanted:
            path = snap / name
            path.parent.mkdir(parents=True, exist_ok=True)
            body = json.dumps(self.index) if name == "model_index.json" else "x" * 100
            if bytes_bar is not None:
                bytes_bar.total += 100
                bytes_bar.update(100)
            path.write_text(body)
            if files_bar is not None:
                files_bar.update(1)
        return str(snap)


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeHub:
    import huggingface_hub
    from huggingface_hub import constants

    fake = FakeHub(tmp_path / "hub", SVD, SVD_INDEX)
    monkeypatch.setattr(huggingface_hub, "list_repo_files", fake.list_repo_files)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake.snapshot_download)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("FATHOM_SETTINGS", str(tmp_path / "absent.conf"))
    monkeypatch.setenv("FATHOM_MODELS", str(tmp_path / "models"))
    return fake


def test_a_pull_reads_the_index_first_then_asks_for_the_selection_only(
    hub: FakeHub, tmp_path: Path
) -> None:
    path = pull_model(SVD_ID, variant="fp16")
    first, second = hub.calls
    assert first["allow_patterns"] == ["model_index.json"]
    assert second["allow_patterns"] == select_files(SVD, "fp16", SVD_INDEX)
    assert "svd_xt.safetensors" not in second["allow_patterns"]
    assert second["cache_dir"] == str(tmp_path / "models")  # the first models folder
    assert "tqdm_class" not in second  # the hub's own progress bars on a terminal
    assert (path / "unet" / "diffusion_pytorch_model.fp16.safetensors").is_file()


def test_pull_keeps_its_options_revision_and_configs_only(hub: FakeHub) -> None:
    pull_model(SVD_ID, revision="v1.1", configs_only=True)
    assert all(c["revision"] == "v1.1" for c in hub.calls)
    assert not [f for f in hub.calls[-1]["allow_patterns"] if f.endswith(".safetensors")]


def test_a_pull_reports_progress_and_stops_when_cancelled(hub: FakeHub) -> None:
    seen: list[PullProgress] = []
    path = pull_model(SVD_ID, progress=seen.append)
    assert path.is_dir() and seen[-1].files_done == seen[-1].files_total == 9
    assert seen[-1].bytes_done == seen[-1].bytes_total == 900 and seen[-1].fraction == 1.0
    seen.clear()
    with pytest.raises(Cancelled):
        pull_model(SVD_ID, progress=seen.append, cancelled=lambda: len(seen) >= 3)
    assert len(seen) == 3


def test_a_pickle_only_repository_is_refused_without_downloading(hub: FakeHub) -> None:
    hub.files, hub.index = PICKLES, None
    with pytest.raises(ModelError, match="only as pickle") as err:
        pull_model(PICKLES_ID)
    assert "Fix:" in str(err.value) and hub.calls == []


def test_the_command_line_lists_a_dry_run_and_pulls_with_a_variant(
    hub: FakeHub, capsys: pytest.CaptureFixture[str]
) -> None:
    from fathom.engine.cli import main

    assert main(["models", "pull", SVD_ID, "--dry-run"]) == 0
    out = capsys.readouterr().out.split()
    assert out == select_files(SVD, None, SVD_INDEX)
    assert main(["models", "pull", SVD_ID, "--variant", "fp16"]) == 0
    captured = capsys.readouterr()
    assert "resumes" in captured.err and "fp16" in captured.err
    assert hub.calls[-1]["allow_patterns"] == select_files(SVD, "fp16", SVD_INDEX)
    assert main(["models", "pull", "not-an-id"]) == 2
    assert "org/name" in capsys.readouterr().err


def test_the_progress_class_works_with_the_hubs_own_bar_helpers() -> None:
    """The bars snapshot_download makes from the class it is given: a files bar through its
    thread map, a written-bytes bar and a received-bytes bar (only the first two count)."""
    import logging

    try:
        from huggingface_hub.utils._xet_progress_reporting import _update_transfer_bar
        from huggingface_hub.utils.tqdm import _create_progress_bar, hf_thread_map
    except ImportError:
        pytest.skip("this huggingface_hub makes its bars differently")
    from fathom.engine.models.pull import _progress_bar_class

    seen: list[PullProgress] = []
    bar = _progress_bar_class(seen.append, None)

    def make(desc: str) -> Any:
        return _create_progress_bar(
            cls=bar, log_level=logging.WARNING, name="x", desc=desc, total=0, unit="B"
        )

    received, written = make("Downloading bytes"), make("Reconstructing")

    def download(_: int) -> None:
        written.total += 1000
        written.update(1000)
        _update_transfer_bar(received, 400)

    hf_thread_map(download, range(4), tqdm_class=bar, desc="Fetching 4 files", max_workers=2)
    assert seen[-1] == PullProgress(4, 4, 4000, 4000)

"""Random-weight Stable-Diffusion-shaped models for benchmarks (SD-1.5 mini) and tests (tiny).

A two-block toy UNet spends its time in different places than Stable Diffusion, so block-level
techniques (feature reuse, token merging) must be measured on a model with SD 1.5's layout:
four resolution levels, cross-attention on the upper three, two layers per block. ``BENCH`` is
the mini model the generation issue specifies; ``TINY`` keeps the same layout at toy width so
identity tests at 64×64 run in a fraction of a second.

No weights are downloaded: the CLIP tokenizer is built from a byte-level vocabulary written to a
temporary folder, and every module is initialised from a fixed seed.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

# The scheduler settings Stable Diffusion 1.5 ships with (its scheduler_config.json).
SD15_SCHEDULER = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "clip_sample": False,
    "prediction_type": "epsilon",
}


@dataclass(frozen=True)
class ModelSpec:
    """Widths and depths of one random-weight SD-shaped model."""

    unet_channels: tuple[int, ...]
    unet_layers: int
    attention_head_dim: int
    cross_dim: int
    vae_channels: tuple[int, ...]
    vae_layers: int
    vae_groups: int
    tiny_vae_channels: int
    text_layers: int
    text_heads: int
    sample_size: int
    unet_groups: int = 32
    extra: dict[str, Any] = field(default_factory=dict)
    #: "sd" (SD 1.x layout) or "sdxl": SDXL's block layout (no attention at the highest
    #: resolution, deeper transformers below), two text encoders (the second with a projection,
    #: whose pooled output and the size/crop ids condition the UNet) and its scheduler.
    family: str = "sd"
    #: SDXL only: transformer layers per level and the size of each time-id embedding.
    transformer_layers: tuple[int, ...] = ()
    time_embed_dim: int = 256
    text_widths: tuple[int, ...] = ()


BENCH = ModelSpec(
    unet_channels=(64, 128, 256, 256),
    unet_layers=2,
    attention_head_dim=8,
    cross_dim=152,
    vae_channels=(32, 32, 96, 96),
    vae_layers=2,
    vae_groups=32,
    tiny_vae_channels=16,
    text_layers=4,
    text_heads=8,
    sample_size=32,
)

TINY = ModelSpec(
    unet_channels=(32, 32, 64, 64),
    unet_layers=1,
    attention_head_dim=4,
    cross_dim=32,
    vae_channels=(8, 8, 16, 16),
    vae_layers=1,
    vae_groups=8,
    tiny_vae_channels=8,
    text_layers=2,
    text_heads=4,
    sample_size=8,
    unet_groups=16,
)


#: SDXL's layout at toy width: three levels, the top one without attention, two text encoders
#: of width 32 (their hidden states concatenate to the UNet's 64); 6 time ids × 8 + the
#: projection's 32 = 80 added-embedding inputs.
TINY_XL = ModelSpec(
    unet_channels=(32, 32, 64),
    unet_layers=1,
    attention_head_dim=4,
    cross_dim=64,
    vae_channels=(8, 8, 16, 16),
    vae_layers=1,
    vae_groups=8,
    tiny_vae_channels=8,
    text_layers=2,
    text_heads=4,
    sample_size=8,
    unet_groups=16,
    family="sdxl",
    transformer_layers=(1, 1, 2),
    time_embed_dim=8,
    text_widths=(32, 32),
)

#: The SDXL refiner's layout at toy width: one text encoder (the second), an aesthetic score
#: among the time ids (5 × 8 + 32 = 72 added-embedding inputs).
TINY_XL_REFINER = replace(TINY_XL, family="sdxl-refiner")

# The scheduler settings SDXL base ships with (Euler, leading spacing).
SDXL_SCHEDULER = {
    **SD15_SCHEDULER,
    "interpolation_type": "linear",
    "timestep_spacing": "leading",
    "use_karras_sigmas": False,
    "sample_max_value": 1.0,
}


def _byte_unicode() -> list[str]:
    """CLIP's byte-to-printable-character table (every byte gets a visible character)."""
    keep = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars, extra = [], 0
    for b in range(256):
        if b in keep:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def write_tokenizer_files(folder: Path) -> Path:
    """A byte-level CLIP vocabulary (every byte, with and without end-of-word) and no merges."""
    folder.mkdir(parents=True, exist_ok=True)
    chars = _byte_unicode()
    vocab: dict[str, int] = {}
    for c in chars:
        vocab[c] = len(vocab)
    for c in chars:
        vocab[c + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    return folder


def make_tokenizer() -> Any:
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory(prefix="fathom-vocab-") as tmp:
        folder = write_tokenizer_files(Path(tmp))
        return CLIPTokenizer(
            str(folder / "vocab.json"),
            str(folder / "merges.txt"),
            model_max_length=77,
            pad_token="<|endoftext|>",
        )


def build_components(spec: ModelSpec = BENCH, seed: int = 0) -> dict[str, Any]:
    """unet, vae, tiny_vae, text_encoder, tokenizer, scheduler with seeded random weights."""
    from diffusers import AutoencoderKL, AutoencoderTiny, PNDMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    if spec.family in ("sdxl", "sdxl-refiner"):
        return build_xl_components(spec, seed)
    tokenizer = make_tokenizer()
    n_levels = len(spec.unet_channels)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=spec.sample_size,
        in_channels=4,
        out_channels=4,
        block_out_channels=spec.unet_channels,
        layers_per_block=spec.unet_layers,
        down_block_types=("CrossAttnDownBlock2D",) * (n_levels - 1) + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (n_levels - 1),
        attention_head_dim=spec.attention_head_dim,
        cross_attention_dim=spec.cross_dim,
        norm_num_groups=spec.unet_groups,
    )
    torch.manual_seed(seed + 1)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=spec.vae_channels,
        layers_per_block=spec.vae_layers,
        down_block_types=("DownEncoderBlock2D",) * len(spec.vae_channels),
        up_block_types=("UpDecoderBlock2D",) * len(spec.vae_channels),
        latent_channels=4,
        norm_num_groups=spec.vae_groups,
        sample_size=spec.sample_size * 8,
        scaling_factor=0.18215,
    )
    torch.manual_seed(seed + 2)
    c = spec.tiny_vae_channels
    tiny_vae = AutoencoderTiny(
        encoder_block_out_channels=(c,) * 4, decoder_block_out_channels=(c,) * 4
    )
    torch.manual_seed(seed + 3)
    hidden = spec.cross_dim
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=hidden,
            intermediate_size=4 * hidden,
            num_hidden_layers=spec.text_layers,
            num_attention_heads=spec.text_heads,
            max_position_embeddings=77,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    scheduler = PNDMScheduler.from_config(SD15_SCHEDULER)
    modules: list[Any] = [unet, vae, tiny_vae, text_encoder]  # diffusers' stubs hide Module
    for m in modules:
        m.eval().requires_grad_(False)
    calibrate_autoencoders(vae, tiny_vae, spec.sample_size * 8, seed)
    return {
        "unet": unet,
        "vae": vae,
        "tiny_vae": tiny_vae,
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "scheduler": scheduler,
    }


def _vae(spec: ModelSpec, scaling_factor: float, **extra: Any) -> Any:
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=spec.vae_channels,
        layers_per_block=spec.vae_layers,
        down_block_types=("DownEncoderBlock2D",) * len(spec.vae_channels),
        up_block_types=("UpDecoderBlock2D",) * len(spec.vae_channels),
        latent_channels=4,
        norm_num_groups=spec.vae_groups,
        sample_size=spec.sample_size * 8,
        scaling_factor=scaling_factor,
        **extra,
    )


def _text_config(tokenizer: Any, width: int, spec: ModelSpec, **extra: Any) -> Any:
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=width,
        intermediate_size=4 * width,
        num_hidden_layers=spec.text_layers,
        num_attention_heads=spec.text_heads,
        max_position_embeddings=77,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **extra,
    )


def build_xl_components(spec: ModelSpec, seed: int = 0) -> dict[str, Any]:
    """An SDXL-shaped model: unet, vae (forced to float32 when decoding, as SDXL's VAE
    overflows in float16), tiny_vae, text_encoder, text_encoder_2 (with projection),
    tokenizer, tokenizer_2 and an Euler scheduler, all seeded."""
    from diffusers import AutoencoderTiny, EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    tokenizer, tokenizer_2 = make_tokenizer(), make_tokenizer()
    w1, w2 = spec.text_widths
    refiner = spec.family == "sdxl-refiner"  # one text encoder; 5 ids (an aesthetic score)
    cross = w2 if refiner else w1 + w2
    n = len(spec.unet_channels)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=spec.sample_size,
        in_channels=4,
        out_channels=4,
        block_out_channels=spec.unet_channels,
        layers_per_block=spec.unet_layers,
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (n - 1),
        up_block_types=("CrossAttnUpBlock2D",) * (n - 1) + ("UpBlock2D",),
        transformer_layers_per_block=spec.transformer_layers,
        attention_head_dim=spec.attention_head_dim,
        use_linear_projection=True,
        cross_attention_dim=cross,
        addition_embed_type="text_time",
        addition_time_embed_dim=spec.time_embed_dim,
        projection_class_embeddings_input_dim=(5 if refiner else 6) * spec.time_embed_dim + w2,
        norm_num_groups=spec.unet_groups,
    )
    torch.manual_seed(seed + 1)
    vae = _vae(spec, 0.13025, force_upcast=True)
    torch.manual_seed(seed + 2)
    c = spec.tiny_vae_channels
    tiny_vae = AutoencoderTiny(
        encoder_block_out_channels=(c,) * 4, decoder_block_out_channels=(c,) * 4
    )
    torch.manual_seed(seed + 3)
    text_encoder = CLIPTextModel(_text_config(tokenizer, w1, spec))
    torch.manual_seed(seed + 4)
    text_encoder_2 = CLIPTextModelWithProjection(
        _text_config(tokenizer_2, w2, spec, projection_dim=w2)
    )
    modules: list[Any] = [unet, vae, tiny_vae, text_encoder, text_encoder_2]
    for m in modules:
        m.eval().requires_grad_(False)
    calibrate_autoencoders(vae, tiny_vae, spec.sample_size * 8, seed)
    return {
        "unet": unet,
        "vae": vae,
        "tiny_vae": tiny_vae,
        "text_encoder": None if refiner else text_encoder,
        "text_encoder_2": text_encoder_2,
        "tokenizer": None if refiner else tokenizer,
        "tokenizer_2": tokenizer_2,
        "scheduler": EulerDiscreteScheduler.from_config(SDXL_SCHEDULER),
    }


def calibration_images(size: int, n: int = 4, seed: int = 0) -> torch.Tensor:
    """Smooth random colour fields in [-1, 1] (n×3×size×size): photo-like low frequencies."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn((n, 3, 8, 8), generator=g)
    fine = torch.randn((n, 3, 32, 32), generator=g) * 0.3
    img = torch.nn.functional.interpolate(
        coarse, size=size, mode="bicubic"
    ) + torch.nn.functional.interpolate(fine, size=size, mode="bilinear")
    return torch.tanh(img)


@torch.no_grad()
def calibrate_autoencoders(vae: Any, tiny_vae: Any, size: int, seed: int = 0) -> None:
    """Rescale the last layers of random autoencoders so their signals have real-model ranges.

    A freshly initialised tiny autoencoder encodes every image to near-zero latents and decodes
    every latent to an almost constant grey (its biases dominate), so any PSNR measured through
    it would be meaningless. Weights stay random; only the output layers are scaled so that
    encoded latents have unit spread (as Stable Diffusion's scaled latents do) and decoded
    images spread over [-1, 1] with a standard deviation of about 0.5; the tiny autoencoder's
    convolutions also lose their biases, so its output depends on its input.
    """
    images = calibration_images(size, seed=seed)
    for m in tiny_vae.modules():
        if isinstance(m, torch.nn.Conv2d) and m.bias is not None:
            m.bias.zero_()
    enc_last = tiny_vae.encoder.layers[-1]
    std = tiny_vae.encode(images).latents.std()
    enc_last.weight.mul_(1.0 / std)
    latents = torch.randn(
        (4, 4, size // 8, size // 8), generator=torch.Generator().manual_seed(seed)
    )
    dec_last = tiny_vae.decoder.layers[-1]
    out = tiny_vae.decode(latents).sample  # [-1, 1] convention; raw layer output is (out+1)/2
    raw_mean, raw_std = ((out + 1) / 2).mean(), ((out + 1) / 2).std()
    dec_last.weight.mul_(0.25 / raw_std)
    dec_last.bias.fill_(0.5 - float(raw_mean) * 0.25 / float(raw_std))
    # The KL autoencoder: scale the mean half of quant_conv so scaled latents have unit spread.
    mode = vae.encode(images).latent_dist.mode() * vae.config.scaling_factor
    k = 1.0 / mode.std()
    c = vae.quant_conv.out_channels // 2
    vae.quant_conv.weight[:c].mul_(k)
    vae.quant_conv.bias[:c].mul_(k)
    out = vae.decode(latents / vae.config.scaling_factor).sample
    vae.decoder.conv_out.weight.mul_(0.5 / out.std())
    vae.decoder.conv_out.bias.sub_(out.mean(dim=(0, 2, 3)) * 0.5 / out.std())


def save_model(folder: str | Path, spec: ModelSpec = BENCH, seed: int = 0) -> Path:
    """Save as a diffusers Stable Diffusion (or SDXL) folder (safetensors), the tiny VAE in
    ``vae_tiny/``."""
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    folder = Path(folder)
    parts = build_components(spec, seed)
    tiny_vae = parts.pop("tiny_vae")
    pipe: Any
    if spec.family == "sdxl-refiner":
        from diffusers import StableDiffusionXLImg2ImgPipeline

        pipe = StableDiffusionXLImg2ImgPipeline(
            **parts,
            add_watermarker=False,
            requires_aesthetics_score=True,
            force_zeros_for_empty_prompt=False,
        )
    elif spec.family == "sdxl":
        pipe = StableDiffusionXLPipeline(**parts, add_watermarker=False)
    else:
        pipe = StableDiffusionPipeline(
            **parts, safety_checker=None, feature_extractor=None, requires_safety_checker=False
        )
    pipe.save_pretrained(folder, safe_serialization=True)
    tiny_vae.save_pretrained(folder / "vae_tiny", safe_serialization=True)
    return folder


def load_pipeline(folder: str | Path, cls: Any = None) -> Any:
    """Load a saved bench model as a diffusers pipeline (default StableDiffusionPipeline)."""
    from diffusers import StableDiffusionPipeline

    cls = cls or StableDiffusionPipeline
    pipe = cls.from_pretrained(str(folder), safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


# ---- Stable Diffusion 3 (transformer family) --------------------------------------------------


@dataclass(frozen=True)
class SD3Spec:
    """Widths and depths of one random-weight SD3-shaped model: joint (MMDiT) blocks with
    SD 3.5's query/key RMS norm, the first ``dual_layers`` with its second image attention, two
    CLIP text encoders with projections and no T5 (diffusers pads the text features with
    zeros), a 16-channel VAE and the flow-matching Euler scheduler SD3 ships with."""

    layers: int
    heads: int
    head_dim: int
    text_width: int
    text_layers: int
    text_heads: int
    vae_channels: tuple[int, ...]
    vae_layers: int
    vae_groups: int
    sample_size: int
    pos_embed_max_size: int
    dual_layers: int = 0


#: Identity tests: 3 blocks (the first-block cache needs a head, a middle and a last block).
TINY_SD3 = SD3Spec(
    layers=3,
    heads=4,
    head_dim=8,
    text_width=32,
    text_layers=2,
    text_heads=4,
    vae_channels=(8, 8, 16, 16),
    vae_layers=1,
    vae_groups=8,
    sample_size=32,
    pos_embed_max_size=32,
    dual_layers=1,
)

#: Benchmarks: SD 3.5 Medium's block layout (head dim 64, dual attention in the first half,
#: QK norm) at 384 wide and 12 blocks (Medium: 1536 wide, 24 blocks).
BENCH_SD3 = SD3Spec(
    layers=12,
    heads=6,
    head_dim=64,
    text_width=128,
    text_layers=2,
    text_heads=4,
    vae_channels=(32, 32, 64, 64),
    vae_layers=1,
    vae_groups=32,
    sample_size=64,
    pos_embed_max_size=96,
    dual_layers=6,
)

# The VAE scaling and the scheduler settings Stable Diffusion 3 / 3.5 ship with.
SD3_VAE = {"scaling_factor": 1.5305, "shift_factor": 0.0609}
SD3_SCHEDULER = {"num_train_timesteps": 1000, "shift": 3.0}


def _sd3_text_encoder(tokenizer: Any, spec: SD3Spec, seed: int) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    w = spec.text_width
    torch.manual_seed(seed)
    return CLIPTextModelWithProjection(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=w,
            intermediate_size=4 * w,
            num_hidden_layers=spec.text_layers,
            num_attention_heads=spec.text_heads,
            max_position_embeddings=77,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            projection_dim=w,
        )
    )


@torch.no_grad()
def calibrate_sd3_vae(vae: Any, size: int, seed: int = 0) -> None:
    """Give a random 16-channel VAE real-model ranges (see :func:`calibrate_autoencoders`):
    unit-spread scaled latents from encoding, and decoded images around 0 with a standard
    deviation of 0.5, so PSNR measured through it means something."""
    sf, shift = vae.config.scaling_factor, vae.config.shift_factor
    c = vae.config.latent_channels
    mode = (vae.encode(calibration_images(size, seed=seed)).latent_dist.mode() - shift) * sf
    k = 1.0 / mode.std()
    vae.encoder.conv_out.weight[:c].mul_(k)
    vae.encoder.conv_out.bias[:c].mul_(k)
    g = torch.Generator().manual_seed(seed)
    latents = torch.randn((2, c, size // 8, size // 8), generator=g)
    out = vae.decode(latents / sf + shift).sample
    vae.decoder.conv_out.weight.mul_(0.5 / out.std())
    vae.decoder.conv_out.bias.sub_(out.mean(dim=(0, 2, 3)) * 0.5 / out.std())


def build_sd3_components(spec: SD3Spec = TINY_SD3, seed: int = 0) -> dict[str, Any]:
    """The keyword arguments of a ``StableDiffusion3Pipeline`` (T5 left out), seeded."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel

    tokenizer, tokenizer_2 = make_tokenizer(), make_tokenizer()
    width = spec.heads * spec.head_dim
    torch.manual_seed(seed)
    transformer = SD3Transformer2DModel(
        sample_size=spec.sample_size,
        patch_size=2,
        in_channels=16,
        num_layers=spec.layers,
        attention_head_dim=spec.head_dim,
        num_attention_heads=spec.heads,
        joint_attention_dim=2 * spec.text_width,
        caption_projection_dim=width,
        pooled_projection_dim=2 * spec.text_width,
        out_channels=16,
        pos_embed_max_size=spec.pos_embed_max_size,
        dual_attention_layers=tuple(range(spec.dual_layers)),
        qk_norm="rms_norm",
    )
    torch.manual_seed(seed + 1)
    n = len(spec.vae_channels)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=spec.vae_channels,
        layers_per_block=spec.vae_layers,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        latent_channels=16,
        norm_num_groups=spec.vae_groups,
        sample_size=spec.sample_size * 8,
        use_quant_conv=False,
        use_post_quant_conv=False,
        **SD3_VAE,
    )
    text_encoder = _sd3_text_encoder(tokenizer, spec, seed + 2)
    text_encoder_2 = _sd3_text_encoder(tokenizer_2, spec, seed + 3)
    modules: list[Any] = [transformer, vae, text_encoder, text_encoder_2]
    for m in modules:
        m.eval().requires_grad_(False)
    calibrate_sd3_vae(vae, 64, seed)
    return {
        "transformer": transformer,
        "scheduler": FlowMatchEulerDiscreteScheduler(**SD3_SCHEDULER),
        "vae": vae,
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "text_encoder_2": text_encoder_2,
        "tokenizer_2": tokenizer_2,
        "text_encoder_3": None,
        "tokenizer_3": None,
    }


def save_sd3_model(folder: str | Path, spec: SD3Spec = TINY_SD3, seed: int = 0) -> Path:
    """Save a random SD3-shaped model as a diffusers ``StableDiffusion3Pipeline`` folder
    (safetensors; ``text_encoder_3`` null)."""
    from diffusers import StableDiffusion3Pipeline

    folder = Path(folder)
    pipe: Any = StableDiffusion3Pipeline(**build_sd3_components(spec, seed))
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


# ---- SDXL-shaped benchmark model ---------------------------------------------------------------

#: SDXL base's block layout at a fifth of its width, for benchmarks: three levels of (64, 128,
#: 256) channels (SDXL: 320, 640, 1280), no attention at the highest resolution, 2 and 10
#: transformer layers at the two lower levels, linear projections, head dim 64 everywhere
#: (diffusers' ``attention_head_dim`` is SDXL's per-level head *count*, hence the tuple), two
#: text encoders of 160 and 256 wide (SDXL: 768 and 1280; cross-attention 416), the pooled
#: 256-wide projection plus six 256-wide size/crop embeddings as SDXL's ``text_time`` input,
#: and a four-level VAE with SDXL's scaling factor. A toy-width UNet would misplace the cost:
#: on SDXL most of a step is the 10-layer transformers at the lowest level, and so it is here.
_XL_HEADS: Any = (1, 2, 4)  # per level; the ModelSpec field is typed for one count
BENCH_XL = ModelSpec(
    unet_channels=(64, 128, 256),
    unet_layers=2,
    attention_head_dim=_XL_HEADS,
    cross_dim=416,
    vae_channels=(32, 32, 96, 96),
    vae_layers=2,
    vae_groups=32,
    tiny_vae_channels=16,
    text_layers=4,
    text_heads=8,
    sample_size=32,
    family="sdxl",
    transformer_layers=(1, 2, 10),
    time_embed_dim=256,
    text_widths=(160, 256),
)

"""Tiny random Shap-E models (text and image) saved like a user's diffusers folder.

Shap-E's mesh decoder reads its marching-cubes table from the checkpoint (buffers ``cases``
and ``masks``); a randomly built renderer has an all-zero table, which makes every mesh
empty. ``marching_cubes_table`` builds the real table from scikit-image's Lorensen marching
cubes run on each of the 256 corner sign patterns of one cube, in the edge numbering the
decoder uses, so the tiny models give real, non-empty meshes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

#: The prior's token width and count: the latent is TOKENS × WIDTH, and the renderer's four
#: projected MLP layers take RENDER_DIM rows each (4 × 8 = 32 = TOKENS).
WIDTH = 16
TOKENS = 32
RENDER_DIM = 8
IMAGE_SIZE = 32


def _edge_of(point: np.ndarray) -> int:
    """The decoder's index of the cube edge whose midpoint is ``point`` (one coordinate 0.5):
    edges 0-3 run along x at (y, z) = (0,0), (1,0), (0,1), (1,1); 4-7 along y at (x, z);
    8-11 along z at (x, y)."""
    p = np.rint(point * 2).astype(int)  # 0, 1 (the midpoint) or 2
    axis = int(np.flatnonzero(p == 1)[0])
    a, b = (p[k] // 2 for k in range(3) if k != axis)
    return 4 * axis + a + 2 * b


def marching_cubes_table() -> tuple[Any, Any]:
    """(cases 256×5×3 int64 edge indices, masks 256×5 bool): for each bitmask of the eight
    corners (bit x + 2y + 4z set where the field is positive), its triangles."""
    import torch
    from skimage.measure import marching_cubes

    cases = torch.zeros(256, 5, 3, dtype=torch.long)
    masks = torch.zeros(256, 5, dtype=torch.bool)
    for code in range(1, 255):
        vol = np.full((2, 2, 2), -1.0, np.float32)
        for corner in range(8):
            if code >> corner & 1:
                vol[corner & 1, corner >> 1 & 1, corner >> 2 & 1] = 1.0
        verts, faces, _, _ = marching_cubes(vol, 0.0, method="lorensen")
        edges = [_edge_of(v) for v in verts]
        for t, face in enumerate(faces):
            cases[code, t] = torch.tensor([edges[i] for i in face])
            masks[code, t] = True
    return cases, masks


def shape_field(renderer: Any) -> None:
    """Make the random field look like an object. The first MLP layer the latent makes sees
    only the position and its two lowest frequencies (of fifteen): random weights on every
    frequency make a field that changes sign in almost every cell of the 128³ grid (millions
    of triangles), a smooth one a surface of some thousand triangles that still depends on
    the latent. Then the signed-distance output is shifted so that about a third of the
    volume is inside for typical latents (random weights put it all on one side: a box)."""
    import torch
    from diffusers.pipelines.shap_e.renderer import volume_query_points

    proj = renderer.params_proj.projections["nerstf__mlp__0__weight"]
    keep = torch.zeros(93, dtype=torch.bool)
    keep[:9] = True  # x, y, z and sin(x·1), sin(x·2) per axis
    keep[48:54] = True  # cos(x·1), cos(x·2) per axis
    points = volume_query_points(renderer.volume, 16)[None]
    values = []
    with torch.no_grad():
        proj.norm.weight[~keep] = 0.0
        proj.norm.bias[~keep] = 0.0
        proj.proj.bias.view(RENDER_DIM, 93)[:, ~keep] = 0.0
        for s in range(4):
            gen = torch.Generator().manual_seed(s)
            latent = torch.randn(1, TOKENS, WIDTH, generator=gen).clamp(-1, 1)
            for name, p in renderer.params_proj(latent).items():
                renderer.mlp.get_parameter(name.removeprefix("nerstf.")).copy_(p[0])
            out = renderer.mlp(
                position=points, direction=None, ts=None, nerf_level="fine", rendering_mode="stf"
            )
            values.append(torch.atanh(out.signed_distance.clamp(-0.999, 0.999)).flatten())
        renderer.mlp.mlp[-1].bias[0] -= torch.quantile(torch.cat(values), 2 / 3)


def _prior(image: bool, proj_dim: int) -> Any:
    from diffusers import PriorTransformer

    return PriorTransformer(
        num_attention_heads=2,
        attention_head_dim=8,
        embedding_dim=WIDTH,
        num_embeddings=TOKENS,
        embedding_proj_dim=proj_dim,
        time_embed_dim=32,
        num_layers=1,
        clip_embed_dim=2 * WIDTH,
        additional_embeddings=0,
        time_embed_act_fn="gelu",
        norm_in_type="layer",
        embedding_proj_norm_type="layer" if image else None,
        encoder_hid_proj_type=None,
        added_emb_type=None,
    )


def _shared(image: bool, proj_dim: int) -> dict[str, Any]:
    """Prior, scheduler (Shap-E's: Heun, exp betas, Karras sigmas, x0-prediction) and renderer."""
    from diffusers import HeunDiscreteScheduler
    from diffusers.pipelines.shap_e import ShapERenderer

    renderer = ShapERenderer(
        param_shapes=((RENDER_DIM, 93), (RENDER_DIM, 8), (RENDER_DIM, 8), (RENDER_DIM, 8)),
        d_latent=WIDTH,
        d_hidden=RENDER_DIM,
        n_output=12,
        background=(0.1, 0.1, 0.1),
    )
    cases, masks = marching_cubes_table()
    renderer.mesh_decoder.cases.copy_(cases)
    renderer.mesh_decoder.masks.copy_(masks)
    shape_field(renderer)
    scheduler = HeunDiscreteScheduler(
        beta_schedule="exp",
        num_train_timesteps=1024,
        prediction_type="sample",
        use_karras_sigmas=True,
        clip_sample=True,
        clip_sample_range=1.0,
    )
    return dict(prior=_prior(image, proj_dim), scheduler=scheduler, shap_e_renderer=renderer)


def build_tiny_shap_e(folder: Path, seed: int = 0) -> Path:
    """A text-to-3D Shap-E folder (``ShapEPipeline``) with random weights, saved as safetensors."""
    import torch
    from diffusers import ShapEPipeline
    from tinymodels import clip_text_config, clip_tokenizer
    from transformers import CLIPTextModelWithProjection

    tok = clip_tokenizer(folder / "vocab")
    torch.manual_seed(seed)
    sizes = dict(hidden_size=16, projection_dim=16, intermediate_size=24, num_attention_heads=2)
    text = CLIPTextModelWithProjection(clip_text_config(tok, **sizes))
    pipe = ShapEPipeline(text_encoder=text, tokenizer=tok, **_shared(False, 16))
    out = folder / "shap-e"
    pipe.save_pretrained(out, safe_serialization=True)
    return out


def build_tiny_shap_e_img(folder: Path, seed: int = 0) -> Path:
    """An image-to-3D Shap-E folder (``ShapEImg2ImgPipeline``) with random weights: a CLIP
    vision encoder on 32×32 inputs in 4×4 patches (64 tokens), saved as safetensors."""
    import torch
    from diffusers import ShapEImg2ImgPipeline
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(seed)
    encoder = CLIPVisionModel(
        CLIPVisionConfig(
            hidden_size=16,
            image_size=IMAGE_SIZE,
            projection_dim=16,
            intermediate_size=24,
            num_attention_heads=2,
            num_channels=3,
            num_hidden_layers=2,
            patch_size=4,
        )
    )
    processor = CLIPImageProcessor(
        crop_size=IMAGE_SIZE,
        do_center_crop=True,
        do_normalize=True,
        do_resize=True,
        image_mean=[0.48145466, 0.4578275, 0.40821073],
        image_std=[0.26862954, 0.26130258, 0.27577711],
        resample=3,
        size=IMAGE_SIZE,
    )
    pipe = ShapEImg2ImgPipeline(
        image_encoder=encoder, image_processor=processor, **_shared(True, 16)
    )
    out = folder / "shap-e-img2img"
    pipe.save_pretrained(out, safe_serialization=True)
    return out

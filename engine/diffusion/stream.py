"""Stream pipeline: real-time image-to-image on a frame stream (StreamDiffusion's design, our code).

Kodaira et al., "StreamDiffusion: A Pipeline-level Solution for Real-time Interactive
Generation" (2023). With ``n`` denoising stages (``t_index_list``):

- **Stream Batch**: the latents of the last ``n`` input frames sit at different stages; one
  batched UNet call advances every one of them by a stage, so each new frame leaves after one
  UNet pass (with a latency of ``n - 1`` frames). Equal, up to float rounding, to denoising each
  frame on its own with the same noise and timesteps (:meth:`StreamPipeline.denoise_sequential`).
- **Residual CFG**: classifier-free guidance without a second UNet pass. The negative noise is
  the "virtual residual noise" that would turn the current latent back into a reference latent:
  the input image itself (``cfg_type="self"``) or the negative prompt's prediction made once at
  the first stage (``"initialize"``). ``"full"`` is ordinary CFG, ``"none"`` no guidance.
- input/output queues (a frame enters, the oldest finished frame leaves), the stochastic
  similarity filter, tiny-autoencoder encode/decode and prompt embeddings computed once in
  :meth:`prepare`.
- SDXL-family UNets stream too (built with ``components``): both text encoders, the pooled
  embedding and the size ids (the frame's size, no crop) condition every call, and SDXL's
  float16 VAE runs in float32 for the stream (its ``force_upcast``), as diffusers decodes it.
- Beyond the paper: Clockwork feature reuse inside the stream — the UNet's low-resolution core
  runs on every ``clock_period``-th call only; in between, each stage reuses the core features
  kept for the same frame one or more stages earlier ("step") or for the frame before at the
  same stage ("frame") — and token merging on the high-resolution self-attention.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import torch

from fathom.engine.accel.clockwork import Clockwork, ClockworkAdaptor
from fathom.engine.accel.similarity import SimilarityFilter
from fathom.engine.accel.tome import TokenMerge
from fathom.engine.diffusion.control import keep
from fathom.engine.diffusion.stages import Encoded, encode_text, pad_tokens

CFG_TYPES = ("none", "self", "initialize", "full")


class StreamPipeline:
    """Frames in (B×3×H×W in [-1, 1]), frames out, one batched UNet call per input frame."""

    def __init__(
        self,
        unet: Any,
        vae: Any,
        text_encoder: Any,
        tokenizer: Any,
        scheduler: Any,
        tiny_vae: Any = None,
        components: Any = None,
    ) -> None:
        """``components`` (engine.diffusion.components) encodes the prompts when given: its
        prompt cache, LoRA text adapters, embeddings and, for SDXL, both encoders."""
        import inspect

        from diffusers import LCMScheduler

        accepted = inspect.signature(LCMScheduler.__init__).parameters
        self.unet, self.vae, self.tiny_vae = unet, vae, tiny_vae
        self.text_encoder, self.tokenizer = text_encoder, tokenizer
        self.components = components
        self._added: dict[str, torch.Tensor] | None = None  # SDXL: pooled text, size ids
        self._vae_upcast = False
        self.scheduler = LCMScheduler.from_config(
            {k: v for k, v in scheduler.config.items() if k in accepted}
        )
        p = next(unet.parameters())
        self.device, self.dtype = p.device, p.dtype
        self.accel: list[Any] = []
        self.clockwork: Clockwork | None = None
        self.filter: SimilarityFilter | None = None
        self._prepared = False
        self.unet_calls = 0
        #: ControlNets as (model, scale, start, end), and each one's control images of the
        #: frames in the stream, newest first (stage s holds the frame that came s calls ago).
        self.controls: list[tuple[Any, float, float, float]] = []
        self._hints: list[deque[torch.Tensor]] = []
        self._same_frame = False

    # ------------------------------------------------------------------ set-up
    def encode_prompt(self, prompt: str) -> torch.Tensor:
        return self._encode(prompt).embeds.to(dtype=self.dtype)

    def _encode(self, prompt: str) -> Encoded:
        if self.components is not None:
            return self.components.encode(prompt)
        return encode_text(self.tokenizer, self.text_encoder, prompt, self.device)

    def _prompts(self, prompt: str, negative_prompt: str) -> None:
        """The prompt's embeddings and, when the guidance needs it, the negative's (as long as
        the prompt's; an empty one is zeros where the model says so, as diffusers has it)."""
        pos = self._encode(prompt)
        neg: Encoded | None = None
        if self.cfg_type in ("initialize", "full"):
            if not negative_prompt and getattr(self.components, "force_zeros", False):
                pooled = None if pos.pooled is None else torch.zeros_like(pos.pooled)
                neg = Encoded(torch.zeros_like(pos.embeds), pooled)
            else:
                neg = self._encode(negative_prompt)
            if self.components is not None:
                longest = max(pos.embeds.shape[1], neg.embeds.shape[1])
                pos, neg = (pad_tokens(self.components, e, longest) for e in (pos, neg))
        self.cond = pos.embeds.to(dtype=self.dtype)
        self.uncond = None if neg is None else neg.embeds.to(dtype=self.dtype)
        self._pooled = (pos.pooled, None if neg is None else neg.pooled)

    @torch.no_grad()
    def prepare(
        self,
        prompt: str,
        negative_prompt: str = "",
        t_index_list: tuple[int, ...] | list[int] = (32, 45),
        guidance: float = 1.2,
        cfg_type: str = "self",
        seed: int = 0,
        *,
        num_inference_steps: int = 50,
        delta: float = 1.0,
        use_tiny_vae: bool = True,
        similarity_threshold: float | None = None,
        similarity_max_skip: int = 10,
        clock_period: int = 1,
        clock_level: int = 1,
        clock_adaptor: str | ClockworkAdaptor = "identity",
        clock_reuse: str = "step",
        token_merge: float = 0.0,
    ) -> None:
        """Fix the prompt, stages, guidance and accelerations; empties the stream."""
        if cfg_type not in CFG_TYPES:
            raise ValueError(f"cfg_type must be one of {CFG_TYPES}, got {cfg_type!r}")
        if clock_reuse not in ("step", "frame"):
            raise ValueError(f"clock_reuse must be 'step' or 'frame', got {clock_reuse!r}")
        if not t_index_list:
            raise ValueError("t_index_list needs at least one stage")
        self.close()
        self.cfg_type = cfg_type if guidance > 1.0 else "none"
        self.guidance, self.delta, self.seed = float(guidance), float(delta), int(seed)
        self.use_tiny_vae = use_tiny_vae and self.tiny_vae is not None
        self._prompts(prompt, negative_prompt)
        self._added = None
        self.scheduler.set_timesteps(num_inference_steps)
        all_t = self.scheduler.timesteps
        if max(t_index_list) >= len(all_t):
            raise ValueError(
                f"t_index_list {tuple(t_index_list)} reaches past the {len(all_t)} scheduler steps"
            )
        self.timesteps = torch.stack([all_t[i] for i in t_index_list]).long().to(self.device)
        acp = self.scheduler.alphas_cumprod.to(torch.float32)[self.timesteps.cpu()]
        c_skip, c_out = zip(
            *(
                self.scheduler.get_scalings_for_boundary_condition_discrete(t)
                for t in self.timesteps.cpu()
            ),
            strict=True,
        )
        as_col = dict(device=self.device, dtype=self.dtype)
        self.alpha = acp.sqrt().view(-1, 1, 1, 1, 1).to(**as_col)  # (n, 1, 1, 1, 1)
        self.beta = (1 - acp).sqrt().view(-1, 1, 1, 1, 1).to(**as_col)
        self.c_skip = (
            torch.stack([torch.as_tensor(c) for c in c_skip]).view(-1, 1, 1, 1, 1).to(**as_col)
        )
        self.c_out = (
            torch.stack([torch.as_tensor(c) for c in c_out]).view(-1, 1, 1, 1, 1).to(**as_col)
        )
        self.n = len(t_index_list)
        self.filter = (
            SimilarityFilter(similarity_threshold, similarity_max_skip, seed)
            if similarity_threshold is not None
            else None
        )
        if token_merge > 0:
            tome = TokenMerge(ratio=token_merge, seed=seed)
            tome.attach(self.unet)
            self.accel.append(tome)
        if clock_period > 1:
            self.clockwork = Clockwork(
                period=clock_period,
                level=clock_level,
                adaptor=clock_adaptor,
                remap=self._follow_frames if clock_reuse == "step" else None,
            )
            self.clockwork.attach(self.unet)
            self.accel.append(self.clockwork)
        self._upcast_vae()
        self._noise: torch.Tensor | None = None
        self._x: torch.Tensor | None = None  # (n-1, B, 4, h, w) latents waiting at stages 1..
        self._ref: torch.Tensor | None = None  # their RCFG reference latents
        self._filled = 0
        self._last_output: torch.Tensor | None = None
        # The newest frames left; bounded, so a live stream running for hours holds a few.
        self.outputs: deque[torch.Tensor] = deque(maxlen=max(self.n, 1))
        self._hints = [deque(maxlen=self.n) for _ in self.controls]  # an empty stream
        self._prepared = True

    @torch.no_grad()
    def set_prompt(self, prompt: str, negative_prompt: str = "") -> None:
        """A new prompt mid-stream (a live edit): only the text is encoded again; the frames
        in flight, the noise, the schedule and the accelerations stay as prepared."""
        if not self._prepared:
            raise RuntimeError("call prepare() before changing the prompt")
        self._prompts(prompt, negative_prompt)
        if self._added is not None and self._x is not None:
            self._size_conditioning(int(self._x.shape[-2]), int(self._x.shape[-1]))

    def close(self) -> None:
        """Detach the accelerations from the UNet and give the VAE back its own precision
        (prepare() calls this first)."""
        for a in reversed(self.accel):
            a.detach()
        self.accel.clear()
        self.clockwork = None
        if self._vae_upcast:
            self.vae.to(dtype=torch.float16)
            self._vae_upcast = False
        self._prepared = False

    def _upcast_vae(self) -> None:
        """SDXL's VAE overflows in float16 (``force_upcast``): the full VAE runs in float32
        for the whole stream rather than switching on every frame."""
        vae = self.vae
        if (
            not self.use_tiny_vae
            and vae.dtype == torch.float16
            and bool(getattr(vae.config, "force_upcast", 0))
        ):
            vae.to(dtype=torch.float32)
            self._vae_upcast = True

    def _size_conditioning(self, h: int, w: int) -> None:
        """SDXL's added conditioning for latents of h×w: the pooled text embeddings (prompt,
        and negative when guiding) and the size ids (original = target = the frame, no crop)."""
        pos, neg = self._pooled
        if pos is None:
            self._added = None
            return
        f = 2 ** (len(self.vae.config.block_out_channels) - 1)
        ids = torch.tensor([[h * f, w * f, 0, 0, h * f, w * f]], dtype=self.dtype)
        self._added = {
            "pos": pos.to(self.device, self.dtype),
            "neg": (pos if neg is None else neg).to(self.device, self.dtype),
            "ids": ids.to(self.device),
        }

    def _init_noise(self, b: int, h: int, w: int) -> None:
        self._size_conditioning(h, w)
        g = torch.Generator().manual_seed(self.seed)
        self._noise = torch.randn((self.n, b, 4, h, w), generator=g).to(self.device, self.dtype)
        self._x = torch.zeros((self.n - 1, b, 4, h, w), device=self.device, dtype=self.dtype)
        self._ref = torch.zeros_like(self._x)
        self._filled = 0

    # ------------------------------------------------------------------ VAE
    @torch.no_grad()
    def encode(self, image: torch.Tensor) -> torch.Tensor:
        if self.use_tiny_vae:
            image = image.to(device=self.device, dtype=self.dtype)
            return self.tiny_vae.encode(image).latents * self.tiny_vae.config.scaling_factor
        image = image.to(device=self.device, dtype=self.vae.dtype)
        z = self.vae.encode(image).latent_dist.mode() * self.vae.config.scaling_factor
        return z.to(self.dtype)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        if self.use_tiny_vae:
            out = self.tiny_vae.decode(latents / self.tiny_vae.config.scaling_factor).sample
        else:
            latents = latents.to(self.vae.dtype)
            out = self.vae.decode(latents / self.vae.config.scaling_factor).sample
        return out.clamp(-1, 1)

    # ------------------------------------------------------------------ one UNet pass
    def _guided_x0(
        self,
        x: torch.Tensor,
        ref: torch.Tensor | None,
        stages: torch.Tensor,
        new_x: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: (S, B, 4, h, w) latents at ``stages``; returns their x0 predictions and, for
        ``initialize``, the reference latent of the stage-0 frame (else ``ref`` unchanged)."""
        s, b = x.shape[:2]
        t = self.timesteps[stages].repeat_interleave(b)
        at = stages.repeat_interleave(b)  # each batch item's stage, for its control image
        flat = x.reshape(s * b, *x.shape[2:])
        emb = self.cond.expand(s * b, -1, -1)
        alpha, beta = self.alpha[stages], self.beta[stages]
        uncond = self.uncond
        if self.cfg_type in ("full", "initialize"):
            assert uncond is not None  # prepare() encodes the negative prompt for these
        if self.cfg_type == "full":
            eps = self._unet(
                torch.cat([flat, flat]),
                torch.cat([t, t]),
                torch.cat([uncond.expand(s * b, -1, -1), emb]),  # type: ignore[union-attr]
                torch.cat([at, at]),
                negatives=s * b,
            )
            eps_u, eps_c = eps.chunk(2)
            eps = (eps_u + self.guidance * (eps_c - eps_u)).view_as(x)
        elif self.cfg_type == "initialize" and new_x is not None:
            # The negative prompt is evaluated once, on the frame entering at stage 0.
            eps = self._unet(
                torch.cat([new_x, flat]),
                torch.cat([t[:b], t]),
                torch.cat([uncond.expand(b, -1, -1), emb]),  # type: ignore[union-attr]
                torch.cat([at[:b], at]),
                negatives=b,
            )
            eps_neg0, eps = eps[:b], eps[b:].view_as(x)
            ref0 = (new_x - self.beta[0, 0] * eps_neg0) / self.alpha[0, 0]
            ref = ref0.unsqueeze(0) if ref is None else torch.cat([ref0.unsqueeze(0), ref[1:]])
        else:
            eps = self._unet(flat, t, emb, at).view_as(x)
        if self.cfg_type in ("self", "initialize"):
            assert ref is not None
            eps_neg = self.delta * (x - alpha * ref) / beta  # the virtual residual noise
            eps = eps_neg + self.guidance * (eps - eps_neg)
        x0 = self.c_out[stages] * (x - beta * eps) / alpha + self.c_skip[stages] * x
        return x0, ref

    def _unet(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        emb: torch.Tensor,
        at: torch.Tensor,
        negatives: int = 0,
    ) -> torch.Tensor:
        """One batched UNet call; the first ``negatives`` rows are the negative prompt's."""
        self.unet_calls += 1
        added = self._added_for(int(x.shape[0]), negatives)
        down, mid = self._control(x, t, emb, at, added)
        return self.unet(
            x,
            t,
            encoder_hidden_states=emb,
            added_cond_kwargs=added,
            down_block_additional_residuals=down,
            mid_block_additional_residual=mid,
            return_dict=False,
        )[0]

    def _added_for(self, rows: int, negatives: int) -> dict[str, torch.Tensor] | None:
        if self._added is None:
            return None
        a = self._added
        pooled = torch.cat([a["neg"].expand(negatives, -1), a["pos"].expand(rows - negatives, -1)])
        return {"text_embeds": pooled, "time_ids": a["ids"].expand(rows, -1)}

    def set_controls(self, controls: list[tuple[Any, float, float, float]]) -> None:
        """ControlNets as (model, scale, start, end), after ``prepare``; start and end are
        fractions of the stream's stages (a ControlNet that should only shape the layout ends
        early). Every frame pushed afterwards brings one control image per ControlNet."""
        self.controls = list(controls)
        self._hints = [deque(maxlen=max(getattr(self, "n", 1), 1)) for _ in self.controls]

    def _control(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        emb: torch.Tensor,
        at: torch.Tensor,
        added: dict[str, torch.Tensor] | None = None,
    ) -> tuple[list[torch.Tensor] | None, torch.Tensor | None]:
        """Each ControlNet sees every batch item with the control image of that item's own
        frame (its stage says how many calls ago the frame came), scaled per stage."""
        down: list[torch.Tensor] | None = None
        mid: torch.Tensor | None = None
        for (net, scale, start, end), hints in zip(self.controls, self._hints, strict=True):
            if not hints:
                raise ValueError("a ControlNet needs a control image with every frame")
            pick = [0 if self._same_frame else min(int(s), len(hints) - 1) for s in at.tolist()]
            b = hints[0].shape[0]
            image = torch.cat([hints[i][k % b : k % b + 1] for k, i in enumerate(pick)])
            weight = torch.tensor(
                [scale * keep(int(s), self.n, start, end) for s in at.tolist()],
                device=x.device,
                dtype=x.dtype,
            ).view(-1, 1, 1, 1)
            d, m = net(
                x,
                t,
                encoder_hidden_states=emb,
                controlnet_cond=image.to(x.device, net.dtype),
                conditioning_scale=1.0,
                added_cond_kwargs=added,
                return_dict=False,
            )
            d = [r * weight for r in d]
            down = d if down is None else [a + r for a, r in zip(down, d, strict=True)]
            mid = m * weight if mid is None else mid + m * weight
        return down, mid

    def _follow_frames(self, gap: int, batch: int) -> torch.Tensor | None:
        """Clockwork remap: a frame now at stage s was at stage s - gap on the kept call."""
        b = self._x.shape[1] if self._x is not None else 1
        stages = torch.arange(self.n).repeat_interleave(b)
        frame = torch.arange(b).repeat(self.n)
        src = torch.where(stages - gap >= 0, stages - gap, stages)
        index = src * b + frame
        if self.cfg_type == "full":
            index = torch.cat([index, index + self.n * b])
        elif self.cfg_type == "initialize":
            index = torch.cat([torch.arange(b), index + b])
        return index if index.numel() == batch else None

    # ------------------------------------------------------------------ the stream
    @torch.no_grad()
    def __call__(
        self, image: torch.Tensor, hints: list[torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Push B frames (and, with ControlNets, each one's control images for them, B×3×H×W
        in [0, 1]); returns the B frames leaving the stream (B×3×H×W in [-1, 1]).

        The stream is ``n - 1`` frames deep: until it has filled, the returned frames are the
        newest input's one-stage estimate. A frame the similarity filter skips returns the
        previous output without running the UNet.
        """
        if not self._prepared:
            raise RuntimeError("call prepare() before streaming frames")
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"expected B×3×H×W frames, got shape {tuple(image.shape)}")
        for queue, hint in zip(self._hints, hints or [], strict=False):
            queue.appendleft(hint)
        if self.filter is not None and self._last_output is not None and not self.filter(image):
            return self._last_output
        if self.filter is not None and self._last_output is None:
            self.filter(image)
        z = self.encode(image)
        b, _, h, w = z.shape
        if self._noise is None or self._noise.shape[1:] != (b, 4, h, w):
            self._init_noise(b, h, w)
        assert self._noise is not None and self._x is not None and self._ref is not None
        new_x = self.alpha[0, 0] * z + self.beta[0, 0] * self._noise[0]
        x = torch.cat([new_x.unsqueeze(0), self._x])
        ref = (
            torch.cat([z.unsqueeze(0), self._ref])
            if self.cfg_type in ("self", "initialize")
            else None
        )
        stages = torch.arange(self.n, device=self.device)
        x0, ref = self._guided_x0(x, ref, stages, new_x=new_x)
        # Every frame but the oldest moves one stage on, re-noised with that stage's noise.
        self._x = self.alpha[1:] * x0[:-1] + self.beta[1:] * self._noise[1:]
        if ref is not None:
            self._ref = ref[:-1]
        self._filled = min(self._filled + 1, self.n)
        done = x0[-1] if self._filled >= self.n else x0[0]
        out = self.decode(done)
        self._last_output = out
        self.outputs.append(out)
        return out

    @property
    def latency(self) -> int:
        """How many calls a frame spends in the stream before it leaves."""
        return self.n - 1

    # ------------------------------------------------------------------ reference
    @torch.no_grad()
    def denoise_sequential(
        self, image: torch.Tensor, hints: list[torch.Tensor] | None = None
    ) -> torch.Tensor:
        """The same frame denoised stage by stage on its own (no Stream Batch), with the
        stream's noise and timesteps: what Stream Batch must reproduce."""
        for queue, hint in zip(self._hints, hints or [], strict=False):
            queue.appendleft(hint)
        self._same_frame = True
        try:
            return self._sequential(image)
        finally:
            self._same_frame = False

    def _sequential(self, image: torch.Tensor) -> torch.Tensor:
        z = self.encode(image)
        b, _, h, w = z.shape
        if self._noise is None or self._noise.shape[1:] != (b, 4, h, w):
            self._init_noise(b, h, w)
        assert self._noise is not None
        x = (self.alpha[0, 0] * z + self.beta[0, 0] * self._noise[0]).unsqueeze(0)
        ref = z.unsqueeze(0) if self.cfg_type in ("self", "initialize") else None
        x0 = x
        for i in range(self.n):
            stage = torch.tensor([i], device=self.device)
            x0, ref = self._guided_x0(x, ref, stage, new_x=x[0] if i == 0 else None)
            if i + 1 < self.n:
                x = self.alpha[i + 1] * x0 + self.beta[i + 1] * self._noise[i + 1]
        return self.decode(x0[0])

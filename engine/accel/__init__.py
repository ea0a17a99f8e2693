"""Fathom's own diffusion loop and the efficiency techniques that plug into it.

Modules: ``loop`` (the denoising loop over diffusers components), ``preview`` (step previews),
and the techniques ``tome``, ``clockwork``, ``adaptive``, ``stream``, ``similarity``; for video,
``objectcentric`` (the video loop, object-centric token merging and sampling) and ``videoattn``
(anchor-frame attention, flow fusion); plus ``benchmodel``, the random-weight models benchmarks
use. Nothing is imported here, so importing
``engine.accel`` costs nothing and never imports torch.

The contract between the loop and a technique
---------------------------------------------
``engine.accel.loop.generate(components, ..., accel=[...])`` takes an optional list of
acceleration objects. ``components`` is a :class:`engine.accel.loop.Components` (or any object
with the attributes ``unet``, ``vae``, ``text_encoder``, ``tokenizer``, ``scheduler`` and
``tiny_vae`` (may be ``None``)). Each acceleration object has:

- ``attach(components) -> None``: called once before the first step. Wrap or patch what you
  need (e.g. the blocks or attention processors of ``components.unet``).
- ``detach() -> None``: called once after the last step, also when the run fails or is
  cancelled; must restore the model exactly (the components are shared by every node).
- optional ``before_step(step_index, t, latents) -> None``: before the UNet call of a step.
- optional ``after_step(step_index, t, latents, pred_x0) -> bool``: after the scheduler step;
  ``latents`` is the new sample, ``pred_x0`` the step's prediction of the clean latents (scaled
  latent space, as the VAE decodes them after dividing by its scaling factor). Return True to
  stop denoising now (adaptive steps); the loop then decodes ``pred_x0``.

The UNet is always called as ``components.unet(sample, t, encoder_hidden_states=...,
timestep_cond=..., return_dict=False)[0]``, once per step with the CFG halves batched, so
wrappers attached to the UNet (clockwork reuse, token merging) see every call. Hooks run in list
order; ``attach`` in list order, ``detach`` in reverse order.

With ``accel`` empty the loop's output equals diffusers' ``StableDiffusionPipeline`` /
``StableDiffusionImg2ImgPipeline`` / ``StableDiffusionInpaintPipeline`` for the same components,
scheduler, seed (a CPU generator) and settings (tests/engine/test_loop.py checks it).

``generate.stream`` uses :class:`engine.accel.stream.StreamPipeline`, built from the same loaded
components: ``StreamPipeline(unet, vae, text_encoder, tokenizer, scheduler, tiny_vae=None)``,
then ``prepare(prompt, negative_prompt, t_index_list, guidance, cfg_type, seed, ...)`` with
``cfg_type`` in {"none", "self", "initialize", "full"}, then ``pipe(frames)`` with frames
B×3×H×W in [-1, 1] returning frames in the same range; ``close()`` detaches its accelerations.
"""

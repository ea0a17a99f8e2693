"""Accelerations: the efficiency techniques that plug into the diffusion runs, and nothing else.

Modules: ``tome`` (token merging), ``clockwork`` (reuse of low-resolution UNet features across
steps, frames or stream stages), ``adaptive`` (stop when the prediction has converged),
``objectcentric`` (object-centric token merging and sampling for video edits) and
``similarity`` (skip near-identical stream frames); for video perception (video.depth),
``depth_vit`` (Depth Anything's forward layer by layer), ``temporal_reuse`` (recompute only the
changed patches) and ``resq`` (low-bit residuals between frames). The runs they speed up (the
image loop, the video edit, the stream) live in ``engine.diffusion``; nothing is imported here, so
importing ``engine.accel`` costs nothing and never imports torch.

The hook contract (``engine.diffusion.stages.Acceleration``)
------------------------------------------------------------
A run takes a list of acceleration objects. Each has:

- ``attach(components) -> None``: called once before the first step, with the run's
  ``engine.diffusion.components.Components`` (or the bare UNet, for the stream): wrap or patch
  what you need (the blocks or attention processors of ``components.unet``).
- ``detach() -> None``: called once after the last step, also when the run fails or is
  cancelled; it must restore the model exactly (the components are shared by every node).
- optional ``before_step(step_index, t, latents) -> None``: before the UNet call of a step.
- optional ``after_step(step_index, t, latents, pred_x0) -> bool``: after the scheduler step;
  ``latents`` is the new sample, ``pred_x0`` the step's prediction of the clean latents
  (scaled latent space). Return True to stop denoising now (adaptive steps); the loop then
  decodes ``pred_x0``.

The UNet is always called as ``components.unet(sample, t, encoder_hidden_states=...,
timestep_cond=..., return_dict=False)[0]``, once per step with the CFG halves batched, so
wrappers attached to the UNet (Clockwork reuse, token merging) see every call. Hooks run in list
order; ``attach`` in list order, ``detach`` in reverse order
(``engine.diffusion.stages.attached``).

With no accelerations each run's output equals diffusers' pipeline for the same components,
scheduler, seed and settings (tests/engine/test_loop.py checks it).
"""

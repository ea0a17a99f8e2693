"""The diffusion pipeline: model components, schedulers, shared stages, and the image, video
and stream runs."""

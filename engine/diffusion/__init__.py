"""The diffusion pipeline: model components, schedulers, shared stages, the image, video and stream runs."""

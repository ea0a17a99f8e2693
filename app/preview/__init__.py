"""Preview viewers for node outputs (image, depth, video, mesh/points) and the dock holding them."""

"""Image libraries: codecs, pixel operations, depth-map math, optical flow and hole filling."""

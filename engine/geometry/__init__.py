"""3-D geometry and rendering: cameras and projection, meshing, rasterising, scenes, TSDF fusion, viewer renders."""

"""3-D geometry and rendering: cameras and projection, meshing, rasterising, scenes, TSDF
fusion, and the software renders interactive viewers show."""

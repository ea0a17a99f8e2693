"""The node editor: a QGraphicsScene mirroring the graph model, its view, items and palette."""

"""Fathom Studio's headless engine: graph model, port types, files, registry, executor, devices."""

__version__ = "0.1.0"

"""Fathom Studio node library: one module per family; no Qt here, ever."""

"""Fathom Studio's headless engine: graph model, port types, files, registry, executor, devices."""

import os as _os

__version__ = "0.1.0"

# OpenMP threads that spin while waiting turn a busy machine (other renders, the GUI, a test
# runner) into a crawl: the demo took 4 min instead of 20 s under load with the default active
# policy. Sleeping waiters cost nothing measurable when the machine is idle. Only applies if
# torch is not yet imported, and never overrides a user's own setting.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

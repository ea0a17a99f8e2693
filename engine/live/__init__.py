"""Live sessions: a graph cooked once per captured frame, with capture, model and output threads.

StreamDiffusion's pipeline shape (Kodaira et al., 2023), applied to any graph: each source has a
capture thread filling a bounded queue where the newest frame wins (a model that falls behind
drops frames, counted, instead of growing a backlog), one model thread cooks ticks through the
ordinary ``Executor``, and each output node has a thread writing from a bounded queue.
"""

from fathom.engine.live.capture import Capture
from fathom.engine.live.queues import NewestQueue
from fathom.engine.live.session import (
    CapturedFrame,
    LiveOptions,
    LiveReport,
    LiveSession,
    LiveStats,
    LiveTick,
)
from fathom.engine.live.sinks import Sink

__all__ = [
    "Capture",
    "CapturedFrame",
    "LiveOptions",
    "LiveReport",
    "LiveSession",
    "LiveStats",
    "LiveTick",
    "NewestQueue",
    "Sink",
]

"""Frame sources: where the station's items come from."""

from station.sources.base import Frame, FrameSource, SourceExhausted

__all__ = ["Frame", "FrameSource", "SourceExhausted"]

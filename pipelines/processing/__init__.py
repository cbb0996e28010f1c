"""Per-camera processing: the StreamProcessor, its events, zones and lines, and the overlays of one source."""

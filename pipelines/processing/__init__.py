"""Per-camera processing: events, zones and lines, overlays and counters of one source."""

"""trackstream pipelines: sources, detector, sinks, overlays and the command line."""

__version__ = "0.1.0"

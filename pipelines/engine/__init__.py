"""The engine that joins sources, detector, per-camera processors and sinks (threads and queues)."""

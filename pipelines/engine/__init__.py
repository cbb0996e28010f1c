"""The engine that joins sources, detector, per-camera processors and sinks (threads and queues): how a run
starts (``launch``), runs (``runner``) and is read while it runs (``view``, ``stats``)."""

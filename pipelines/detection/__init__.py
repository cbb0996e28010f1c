"""Detection: a model maps batches of frames to Detections (pipelines/detection/detector.py)."""

"""The shared fixtures (bundled video and pose weights) for the GPU checks."""

from tests.conftest import bikes_video, pose_weights  # noqa: F401 - fixtures, used by name

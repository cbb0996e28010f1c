"""Per-source output paths when several cameras run in one process."""

from __future__ import annotations

import pytest

from pipelines.sinks import output_path


@pytest.mark.parametrize("template, source_id, several, expected", [
    ("out/{source}.jsonl", "gate", True, "out/gate.jsonl"),
    ("out/{source}.mp4", "127.0.0.1:8554/cam/1", True, "out/127.0.0.1_8554_cam_1.mp4"),  # id from a URL
    ("cams.jsonl", "yard", True, "cams_yard.jsonl"),
    ("cams.jsonl", "yard", False, "cams.jsonl"),
    ("{source}.txt", "../etc", True, "etc.txt"),  # an id never walks out of the output folder
])
def test_each_source_gets_its_own_safe_file(template, source_id, several, expected):
    assert output_path(template, source_id, several) == expected

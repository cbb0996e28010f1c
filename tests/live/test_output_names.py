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
    ("out/{source}.jsonl", "日本", True, "out/日本.jsonl"),  # letters of any script are kept
    ("out/{source}.jsonl", "cafe\u0301", True, "out/caf\u00e9.jsonl"),  # NFD in, NFC out
    ("out/{source}.jsonl", "हिन्दी", True, "out/हिन्दी.jsonl"),  # combining vowel signs are part of the word
    ("cams.jsonl", "日本/中文", True, "cams_日本_中文.jsonl"),
    ("{source}.txt", ".日本", True, "日本.txt"),  # no hidden file
    ("{source}.txt", "a\nb\x00c", True, "a_b_c.txt"),  # no control characters
])
def test_each_source_gets_its_own_safe_file(template, source_id, several, expected):
    assert output_path(template, source_id, several) == expected


def test_ids_in_other_scripts_stay_distinct_and_mqtt_keeps_its_ascii_topic_levels():
    from pipelines.sinks.base import safe_name
    from pipelines.sinks.mqtt_conn import topic_part

    assert len({safe_name(name) for name in ("日本", "中文", "한국", "Ελλάδα", "source")}) == 5
    assert topic_part("日本") == "_"   # Home Assistant ids and topic levels: A-Za-z0-9_- only

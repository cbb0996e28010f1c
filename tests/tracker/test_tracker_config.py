"""TrackerConfig: the shipped YAML documents every key, and bad settings are rejected naming the key."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from tracker import ConfigError, TrackerConfig

DEFAULT_YAML = Path(__file__).resolve().parents[2] / "configs" / "tracker" / "default.yaml"


def test_default_yaml_holds_every_key_with_a_comment_and_the_defaults():
    lines = [ln for ln in DEFAULT_YAML.read_text().splitlines() if ln and not ln.startswith("#")]
    keys = {f.name for f in dataclasses.fields(TrackerConfig)}
    assert {ln.split(":")[0] for ln in lines} == keys
    for ln in lines:
        assert re.search(r"\S\s+#\s*\S", ln), f"key without a comment on its line: {ln}"
    assert TrackerConfig.from_yaml(DEFAULT_YAML) == TrackerConfig()


@pytest.mark.parametrize("data, key, message", [
    ({"lost_track_buffer": 1.0}, "tracker.lost_track_buffer", "unknown key"),
    ({"minimum_iou": 1.5}, "tracker.minimum_iou", "must be <= 1.0"),
    ({"lost_track_buffer_seconds": -1}, "tracker.lost_track_buffer_seconds", "must be >= 0.0"),
    ({"frame_rate": 0}, "tracker.frame_rate", "must be > 0.0"),
    ({"confirmation_hits": 0}, "tracker.confirmation_hits", "must be >= 1"),
    ({"confirmation_hits": 2.5}, "tracker.confirmation_hits", "whole number"),
    ({"fuse_confidence": "yes"}, "tracker.fuse_confidence", "true or false"),
    ({"high_confidence_threshold": 0.3, "low_confidence_threshold": 0.4},
     "tracker.low_confidence_threshold", "must be <= high_confidence_threshold"),
])
def test_bad_settings_are_rejected_naming_the_key(data, key, message):
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        TrackerConfig.from_dict(data)
    assert info.value.key == key and str(info.value).startswith(key)


def test_config_is_frozen_and_round_trips_through_a_dict(tmp_path):
    cfg = TrackerConfig.from_dict({"lost_track_buffer_seconds": 3.0, "per_class_matching": True})
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.minimum_iou = 0.5  # type: ignore[misc]
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    assert TrackerConfig.from_yaml(path) == cfg


def test_unreadable_or_invalid_yaml_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        TrackerConfig.from_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("minimum_iou: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        TrackerConfig.from_yaml(bad)

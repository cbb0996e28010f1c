"""A config file cannot exhaust the machine: size and alias expansion are bounded, huge values are shortened."""

from __future__ import annotations

import time

import pytest

from pipelines.config import read_config_file
from tests.conftest import run_cli
from tracker.configutil import MAX_CONFIG_BYTES, ConfigError

# under 500 bytes: nine levels of nine aliases (9**9 = 387 million strings) inside a zone name
BOMB = "\n".join(
    ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    + ["zones: [{name: *a8, polygon: [[0,0],[9,0],[9,9]]}]"]) + "\n"


def _timed_refusal(path) -> str:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    with pytest.raises(ConfigError) as err:
        read_config_file(path)
    assert time.perf_counter() - started < 0.5
    return str(err.value)


def test_the_nested_alias_bomb_fails_fast_in_one_line(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB, encoding="utf-8")
    assert len(BOMB) < 600
    assert "aliases" in _timed_refusal(path)
    done = run_cli("run", "clip.mp4", "--config", str(path), timeout=60)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_a_recursive_alias_is_refused(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text("zones: &z [{name: a, polygon: *z}]\n", encoding="utf-8")
    assert "recursive alias" in _timed_refusal(path)


def test_a_config_file_above_the_limit_is_refused_before_parsing(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("# padding\n" * (MAX_CONFIG_BYTES // 10 + 10), encoding="utf-8")
    assert "limited to 256 KiB" in _timed_refusal(path)


def test_a_huge_value_is_shortened_in_the_error(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text("detector: {conf: '" + "9" * 200_000 + "x'}\n", encoding="utf-8")
    done = run_cli("run", "clip.mp4", "--config", str(path), timeout=60)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "detector.conf" in done.stderr and len(done.stderr) < 600 and "characters)" in done.stderr


def test_a_zone_traced_with_thousands_of_points_loads_at_once(tmp_path):
    """A zone traced round a mask (a contour of 12,000 points, 190 KiB: within the file limit): the bow-tie check
    compared every side with every other in Python, 72 million pairs, and the run sat over half a minute before its
    first frame; a config file must not cost the machine that."""
    import math

    from pipelines.config import build_config

    n = 12_000
    turns = [2 * math.pi * i / n for i in range(n)]
    ring = ",".join(f"[{1920 + 1800 * math.cos(t):.2f},{1080 + 1000 * math.sin(t):.2f}]" for t in turns)
    path = tmp_path / "traced.yaml"
    path.write_text(f"zones: [{{name: yard, polygon: [{ring}]}}]\n", encoding="utf-8")
    assert path.stat().st_size < MAX_CONFIG_BYTES
    started = time.perf_counter()
    config = build_config(read_config_file(path))
    assert time.perf_counter() - started < 10.0   # a hang guard, not a speed target: 0.3 s now, 37 s before
    assert len(config.zones[0].polygon) == n

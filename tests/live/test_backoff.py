"""Reconnect delays: exponential, capped, jittered, with an attempt limit."""

from __future__ import annotations

import random

import pytest

from pipelines.sources.backoff import Backoff


def test_delays_double_up_to_the_cap_with_jitter():
    backoff = Backoff(initial_delay=0.5, max_delay=4.0, rng=random.Random(1))
    delays = [backoff.failed() for _ in range(7)]
    for n, delay in enumerate(delays):
        base = min(4.0, 0.5 * 2 ** n)
        assert 0.5 * base <= delay <= base
    assert not backoff.exhausted  # 0 attempts = forever


def test_jitter_spreads_cameras_that_fail_together():
    first = [Backoff(rng=random.Random(seed)).failed() for seed in range(20)]
    assert len({round(d, 6) for d in first}) == 20


@pytest.mark.parametrize("attempts, failures, exhausted", [(2, 1, False), (2, 2, True), (1, 1, True), (0, 50, False)])
def test_attempt_limit(attempts, failures, exhausted):
    backoff = Backoff(max_attempts=attempts)
    for _ in range(failures):
        backoff.failed()
    assert backoff.exhausted is exhausted


def test_success_starts_over_from_the_initial_delay():
    backoff = Backoff(initial_delay=1.0, max_delay=30.0, max_attempts=3, rng=random.Random(0))
    for _ in range(2):
        backoff.failed()
    backoff.reset()
    assert backoff.failed() <= 1.0 and not backoff.exhausted


@pytest.mark.parametrize("kwargs", [{"initial_delay": 0}, {"initial_delay": 2, "max_delay": 1}, {"max_attempts": -1}])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        Backoff(**kwargs)

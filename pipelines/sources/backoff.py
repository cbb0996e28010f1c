"""Reconnect delays: exponential backoff with jitter, bounded, with an optional attempt limit."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays between reconnect attempts.

    The n-th consecutive failure waits ``min(max_delay, initial_delay * 2**(n-1))`` seconds scaled by a random
    factor in [0.5, 1.0] ("equal jitter"), so many cameras that drop together do not reconnect in lock-step.
    ``max_attempts == 0`` means retry forever. ``reset()`` after a successful connection starts over.
    """

    initial_delay: float = 0.5
    max_delay: float = 30.0
    max_attempts: int = 0
    rng: random.Random = field(default_factory=random.Random)
    failures: int = 0

    def __post_init__(self) -> None:
        if self.initial_delay <= 0 or self.max_delay < self.initial_delay:
            raise ValueError("backoff needs 0 < initial_delay <= max_delay")
        if self.max_attempts < 0:
            raise ValueError("max_attempts must be >= 0 (0 = forever)")

    @property
    def exhausted(self) -> bool:
        """True once ``max_attempts`` consecutive attempts have failed (never when unlimited)."""
        return self.max_attempts > 0 and self.failures >= self.max_attempts

    def failed(self) -> float:
        """Record one failed attempt; returns the seconds to wait before the next one."""
        self.failures += 1
        base = min(self.max_delay, self.initial_delay * 2 ** min(self.failures - 1, 32))
        return float(base * self.rng.uniform(0.5, 1.0))

    def reset(self) -> None:
        """A connection succeeded: the next failure starts again from ``initial_delay``."""
        self.failures = 0

"""A clock the cognition tests move by hand (time in microseconds, like the store's)."""

from __future__ import annotations

DAY = 86_400 * 1_000_000


class FakeClock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now

    def advance(self, days: float) -> None:
        self.now += int(days * DAY)

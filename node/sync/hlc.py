"""Hybrid logical clock.

A timestamp is (physical milliseconds, counter); with the node id it gives a total order that respects
causality even when wall clocks disagree. The text form `0001732262400000.00007` (16 + 1 + 5 characters)
sorts like the tuple, so it can be compared as a string in SQL.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from collections.abc import Callable


@dataclass(frozen=True, order=True)
class Timestamp:
    ms: int
    counter: int

    def __str__(self) -> str:
        return f"{self.ms:016d}.{self.counter:05d}"

    @classmethod
    def parse(cls, text: str) -> "Timestamp":
        ms, _, counter = text.partition(".")
        if len(ms) != 16 or len(counter) != 5 or not ms.isdigit() or not counter.isdigit():
            raise ValueError(f"not an HLC timestamp: {text!r}")
        return cls(int(ms), int(counter))


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class Clock:
    """A hybrid logical clock; `now_ms` is injectable for tests."""

    def __init__(self, now_ms: Callable[[], int] = wall_ms, last: Timestamp | None = None):
        self._now_ms = now_ms
        self._last = last or Timestamp(0, 0)
        self._lock = threading.Lock()

    @property
    def last(self) -> Timestamp:
        return self._last

    def now(self) -> Timestamp:
        """A timestamp later than every one this clock has issued or observed."""
        with self._lock:
            physical = self._now_ms()
            if physical > self._last.ms:
                self._last = Timestamp(physical, 0)
            else:
                self._last = Timestamp(self._last.ms, self._last.counter + 1)
            return self._last

    def observe(self, remote: Timestamp) -> None:
        """Move past a timestamp seen on a received change, so later local events order after it."""
        with self._lock:
            physical = self._now_ms()
            top = max(physical, self._last.ms, remote.ms)
            if top == self._last.ms == remote.ms:
                counter = max(self._last.counter, remote.counter) + 1
            elif top == self._last.ms:
                counter = self._last.counter + 1
            elif top == remote.ms:
                counter = remote.counter + 1
            else:
                counter = 0
            self._last = Timestamp(top, counter)

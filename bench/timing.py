"""Timing scenarios: warm-up, bounded interleaved repetitions, and the figures we report (median, p95, ...)."""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Result:
    """The samples of one scenario, in milliseconds, and the statuses the server answered."""

    name: str
    group: str  # worklist | search | dossier | receive | api-worklist | ...
    goal_ms: float | None
    samples: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # CPU time of this thread per call, ms
    statuses: Counter = field(default_factory=Counter)
    expected: int = 200
    note: str = ""

    @property
    def errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != self.expected)

    def figure(self, q: float) -> float:
        """The q-quantile (0..1) of the samples, nearest rank."""
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def passed(self) -> bool | None:
        if self.goal_ms is None:
            return None
        return self.errors == 0 and self.median < self.goal_ms

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "group": self.group, "goal_ms": self.goal_ms,
                               "count": len(self.samples), "errors": self.errors,
                               "statuses": {str(k): v for k, v in sorted(self.statuses.items())}}
        if self.samples:
            out.update(median_ms=round(self.median, 3), p95_ms=round(self.figure(0.95), 3),
                       min_ms=round(min(self.samples), 3), max_ms=round(max(self.samples), 3),
                       mean_ms=round(statistics.fmean(self.samples), 3),
                       cpu_median_ms=round(statistics.median(self.cpu), 3), passed=self.passed)
        if self.note:
            out["note"] = self.note
        return out


@dataclass
class Plan:
    """A scenario to time: where its figures go, and `call(i)` returning a response (`.status_code`)."""

    result: Result
    call: Callable[[int], Any]


def run_all(plans: list[Plan], reps: int, warmup: int = 5, rounds: int = 5, budget_s: float = 60.0) -> None:
    """Time every plan `reps` times after `warmup` calls each, in `rounds` interleaved rounds.

    Interleaving spreads a burst of load from other processes over all scenarios instead of spoiling
    one. Only the time inside `call` counts: wall time (what an officer waits for) and this thread's CPU
    time (the same work without the waits for a busy CPU or for the disk; the test client runs the app
    in this thread). A scenario stops early, with fewer samples, once `budget_s` seconds of measured time
    have passed, so a pathological one cannot hold the whole run.
    """
    for plan in plans:
        for i in range(warmup):
            plan.call(-1 - i)
    per_round = -(-reps // rounds)
    spent = [0.0] * len(plans)
    for _ in range(rounds):
        for k, plan in enumerate(plans):
            result = plan.result
            for _ in range(min(per_round, reps - len(result.samples))):
                if spent[k] > budget_s:
                    result.note = f"stopped after {len(result.samples)} of {reps} repetitions ({budget_s:.0f} s budget)"
                    break
                i = len(result.samples)
                c0, t0 = time.thread_time(), time.perf_counter()
                response = plan.call(i)
                elapsed = time.perf_counter() - t0
                result.cpu.append((time.thread_time() - c0) * 1000)
                spent[k] += elapsed
                result.samples.append(elapsed * 1000)
                result.statuses[response.status_code] += 1

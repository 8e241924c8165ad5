"""Shared benchmark plumbing: timing, percentiles, the results table and JSON."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["Report", "percentiles", "time_calls"]


def percentiles(samples_s: Sequence[float]) -> dict[str, float]:
    """p50/p99/mean of durations in seconds, reported in microseconds."""
    if not samples_s:
        return {"p50_us": float("nan"), "p99_us": float("nan"), "mean_us": float("nan")}
    ordered = sorted(samples_s)
    n = len(ordered)
    return {
        "p50_us": ordered[n // 2] * 1e6,
        "p99_us": ordered[min(n - 1, int(n * 0.99))] * 1e6,
        "mean_us": sum(ordered) / n * 1e6,
    }


def time_calls(fn: Callable[[Any], object], args: Sequence[Any]) -> list[float]:
    """Time ``fn(a)`` for each ``a``; returns per-call seconds."""
    out = []
    clock = time.perf_counter
    for a in args:
        t0 = clock()
        fn(a)
        out.append(clock() - t0)
    return out


@dataclass
class Report:
    """Rows of (metric, value, unit, target, note), printed and saved as JSON."""

    name: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    def add(
        self, metric: str, value: float, unit: str, *, target: str = "", note: str = ""
    ) -> None:
        self.rows.append(
            {"metric": metric, "value": value, "unit": unit, "target": target, "note": note}
        )

    def machine(self) -> dict[str, Any]:
        return {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
        }

    def table(self) -> str:
        headers = ("metric", "value", "unit", "target", "note")
        cells = [
            [r["metric"], _fmt(r["value"]), r["unit"], r["target"], r["note"]] for r in self.rows
        ]
        widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
        lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
        return "\n".join(lines)

    def write(self, path: str) -> str:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w") as fh:
            json.dump(
                {"benchmark": self.name, "machine": self.machine(), "params": self.params,
                 "results": self.rows},
                fh, indent=2,
            )
        return path


def _fmt(value: float) -> str:
    if isinstance(value, float):
        if value != value:
            return "n/a"
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.3f}"
    return f"{value:,}" if isinstance(value, int) else str(value)

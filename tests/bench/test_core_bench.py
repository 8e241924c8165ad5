"""``engram bench core``: every row is there, and says which projections it measured."""

from __future__ import annotations

import json
from pathlib import Path

from engramdb.bench.core import run


def test_quick_run_reports_core_and_facade_rows(tmp_path: Path) -> None:
    out = tmp_path / "core.json"
    report = run(events=3000, batch=500, out=str(out), workdir=str(tmp_path / "work"),
                 quick=True)
    data = json.loads(out.read_text())
    assert data["results"] == report.rows
    metrics = {row["metric"]: row["value"] for row in data["results"]}
    for name in ("batched append (SQLite, normal, core projections)",
                 "batched append (SQLite, normal, facade projections)",
                 "cold open, 3,000 events, with snapshots (core)",
                 "cold open, 3,000 events, with snapshots (facade)",
                 "cold open, 3,000 events, no snapshots (core)",
                 "cold open, 3,000 events, no snapshots (facade)",
                 "replay rate (core projections)", "replay rate (facade projections)",
                 "raw sqlite3 executemany, same rows (SQLite, normal)",
                 "batched append / raw sqlite3 executemany",
                 "get p50", "entity as-of p50", "single-event append, durability=full"):
        assert metrics[name] > 0, name
    facade = data["params"]["facade projections"]
    # the facade registers the core projections and more (so its rows must say so)
    assert {"nodes", "adjacency", "domains", "cross_domain"} < set(facade)
    assert "facts" in facade

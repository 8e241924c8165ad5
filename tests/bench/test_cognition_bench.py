"""``engram bench cognition --quick``: the JSON has every row and its numbers agree."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from engramdb.adapters.cli import app


def test_quick_run_writes_consistent_json(tmp_path: Path) -> None:
    out = tmp_path / "cognition.json"
    result = CliRunner().invoke(app, ["bench", "cognition", "--quick", "--memories", "1500",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["benchmark"] == "cognition" and data["params"]["quick"] is True
    metrics = {row["metric"]: row for row in data["results"]}
    long = "agents, routines of 48 > working 32"
    for name in (f"prefetch hit rate ({long})", f"get latency saved ({long})",
                 "prefetch hit rate (LoCoMo trace)", "LoCoMo R@10, tiers on (auto)",
                 "recall p50, tiers on (auto)", "archival vectors footprint (int8)",
                 "archival store i8 bytes"):
        assert name in metrics, name
        assert "metric" in result.output  # the table was printed
    assert any(m.startswith("ef auto") for m in metrics)
    params = data["params"]
    for trace in ("prefetch_locomo", "prefetch_agents", "prefetch_agents_long"):
        runs = params[trace]
        assert set(runs) == {"off", "lru", "prefetch"}
        assert runs["off"]["accesses"] == 0  # working tier off: nothing counted
        assert runs["lru"]["accesses"] == runs["prefetch"]["accesses"] > 0  # same trace
        for mode in ("lru", "prefetch"):
            r = runs[mode]
            assert r["hits"] + r["misses"] == r["accesses"]
            assert r["hit_rate"] == r["hits"] / r["accesses"]
        assert runs["lru"]["prefetched"] == 0 and runs["prefetch"]["prefetched"] > 0
    agents = params["prefetch_agents_long"]
    assert metrics[f"prefetch hit rate ({long})"]["value"] == agents["prefetch"]["hit_rate"]
    # routines longer than the working set: an LRU misses them, learned sequences do not
    assert agents["prefetch"]["hit_rate"] > agents["lru"]["hit_rate"]
    assert agents["prefetch"]["prefetch_hits"] > 0
    tiers = params["tiers"]
    counts = tiers["counts"]
    turns = params["turns"]
    assert counts["archival"] == 1500 and sum(counts.values()) == 1500 + turns
    assert tiers["footprint_after"]["cold_rows"] == 1500
    assert tiers["footprint_after"]["warm"] < tiers["footprint_before"]["warm"]
    for mode in ("tiers_off", "tiers_auto", "tiers_warm", "tiers_all"):
        assert 0.0 <= tiers[mode]["r10"] <= 1.0
    assert tiers["tiers_warm"]["archival_share"] == 0.0  # warm-only never reaches archival
    assert tiers["tiers_warm"]["fallback_rate"] == tiers["tiers_off"]["fallback_rate"] == 0.0
    assert tiers["tiers_auto"]["archival_share"] <= tiers["tiers_auto"]["fallback_rate"]
    assert metrics["LoCoMo R@10, tiers on (auto)"]["value"] == tiers["tiers_auto"]["r10"]

"""``engram bench vectors`` on a tiny corpus: every row is there and sane (no timing asserts)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from engramdb.adapters.cli import app
from engramdb.bench.cognition_vectors import crossover, run_vectors


def test_run_vectors_reports_each_figure_beside_its_baseline() -> None:
    rows, extra = run_vectors(n=2500, dim=32, queries=30, clusters=20)
    by = {r["metric"]: r for r in rows}
    fixed = [m for m in by if m.startswith("ef fixed") and m.endswith("recall@10")]
    auto = [m for m in by if m.startswith("ef auto") and m.endswith("recall@10")]
    assert len(fixed) == len(auto) == 1
    assert 0.0 <= by[auto[0]]["value"] <= 1.0 and 0.0 <= by[fixed[0]]["value"] <= 1.0
    for pct in ("1%", "5%", "20%"):
        assert f"filter {pct}: partitioned p50" in by and f"filter {pct}: global p50" in by
    sizes = [by[f"archival store {t} bytes"]["value"] for t in ("i8", "f16", "f32")]
    assert sizes == sorted(sizes) and sizes[0] < sizes[2]  # per-key overhead weighs at dim 32
    assert by["archival store i8 recall@10"]["value"] >= 0.8
    sweep = extra["partition_sweep"]
    assert [s["fraction"] for s in sweep] == sorted(s["fraction"] for s in sweep)
    assert all(s["global_recall_vs_exact"] >= 0.9 for s in sweep)
    assert extra["crossover"] == crossover(sweep)


def test_cli_command_prints_the_table_and_writes_json(tmp_path) -> None:
    out = tmp_path / "vectors.json"
    result = CliRunner().invoke(
        app, ["bench", "vectors", "--n", "1500", "--dim", "16", "--queries", "10",
              "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "archival store i8 bytes" in result.output
    assert json.loads(out.read_text())["benchmark"] == "vectors"

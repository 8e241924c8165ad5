"""``check`` on a healthy store whose vector snapshot was written under another
embedder (issue 9 item 12): a skipped snapshot, not ``corrupt_store``."""

from __future__ import annotations

from pathlib import Path

from engramdb import Memory
from engramdb.recall.embed import HashingEmbedder


def _store(path: Path) -> None:
    with Memory.open(path, embedder=HashingEmbedder(dim=64)) as mem:  # like serve --embedder
        a = mem.remember("Maya lives in Lisbon", domain="people")
        b = mem.remember("Acme builds schedulers", domain="companies")
        mem.relate(a.id, "works_at", b.id)
    assert (Path(str(path) + ".snapshots") / "vectors.snap").exists()


def test_check_under_another_embedder_is_not_a_false_alarm(tmp_path: Path) -> None:
    path = tmp_path / "s.engram"
    _store(path)
    with Memory.open(path, embedder=HashingEmbedder(dim=32), read_only=True) as mem:
        report = mem.check()
    assert report.ok, [(f.subject, f.detail) for f in report.problems]
    [vec] = [f for f in report.findings if f.subject == "vectors.snap"]
    assert vec.detail.startswith("skipped: checksum ok") and "another embedding model" in vec.detail


def test_a_damaged_vector_snapshot_still_fails_check(tmp_path: Path) -> None:
    path = tmp_path / "s.engram"
    _store(path)
    snap = Path(str(path) + ".snapshots") / "vectors.snap"
    snap.write_bytes(snap.read_bytes()[:-5])
    with Memory.open(path, embedder=HashingEmbedder(dim=32), read_only=True) as mem:
        report = mem.check()
    assert [f.subject for f in report.problems] == ["vectors.snap"]


def test_cli_check_after_serving_with_the_hashing_embedder_exits_0(
    tmp_path: Path, monkeypatch: object
) -> None:
    from typer.testing import CliRunner

    from engramdb.adapters.cli import app

    path = tmp_path / "s.engram"
    runner = CliRunner()
    env = {"ENGRAM_EMBEDDER": "hashing"}
    assert runner.invoke(app, ["remember", "Deploys moved to Tuesdays", "-s", str(path)],
                         env=env).exit_code == 0
    # checked with no embedder at all: the vector snapshot cannot be compared, only skipped
    result = runner.invoke(app, ["check", "-s", str(path), "--json"],
                           env={"ENGRAM_EMBEDDER": "none"})
    assert result.exit_code == 0, result.output

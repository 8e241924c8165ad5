"""Damaged files are detected, never silently read (the hash chain and the head marker).

The audit behind these: cutting or flipping bytes in the WAL lost up to 80 of 300
acknowledged writes while ``open`` and ``check`` passed (SQLite drops every commit
after the first bad WAL frame, silently), and 19 of 60 single-bit flips in the db
file changed stored events undetected. Here every such variant must either open
with every acknowledged event intact, or be refused (``CorruptStore``); a read
never returns an event that differs from what was written, and ``check``
names the damage.
"""

from __future__ import annotations

import random
import shutil
import sqlite3
import struct
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from engramdb import Memory
from engramdb.adapters.cli import app
from engramdb.errors import CorruptStore, EngramError
from engramdb.events import NODE_CREATED, Draft
from engramdb.log import SQLiteLog
from engramdb.log import sqlite as sqlite_module

SEED = random.randrange(10**9)
N = 300


def _drafts(i: int) -> list[Draft]:
    return [Draft(type=NODE_CREATED, stream=f"n{i}", payload={"text": f"acknowledged {i}"})]


def _events(path: Path) -> list[tuple[Any, ...]]:
    log = SQLiteLog(str(path))
    try:
        return [(e.seq, e.id, e.stream, e.version, e.payload.text) for e in log.read()]
    finally:
        log.close()


def _copy(files: dict[str, bytes], into: Path) -> Path:
    into.mkdir()
    for name, data in files.items():
        (into / name).write_bytes(data)
    return into / "s.engram"


@pytest.fixture(scope="module")
def crashed(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, bytes], list[Any]]:
    """The files of a store as a crash leaves them: 300 single-event commits, all
    acknowledged, most still only in the WAL (copied while the writer is open)."""
    path = tmp_path_factory.mktemp("crashed") / "s.engram"
    log = SQLiteLog(str(path))
    log._conn.execute("PRAGMA wal_autocheckpoint=0")  # keep every commit in the WAL
    for i in range(N):
        log.append(_drafts(i))
    files = {p.name: p.read_bytes() for p in path.parent.iterdir() if p.name != "s.engram.lock"}
    log.close()
    acked = [(i + 1, None, f"n{i}", 1, f"acknowledged {i}") for i in range(N)]
    return files, acked


def _frames(wal: bytes) -> tuple[int, int]:
    page_size = struct.unpack(">I", wal[8:12])[0]
    return page_size, (len(wal) - 32) // (24 + page_size)


def _check_variant(path: Path, acked: list[Any]) -> str:
    """'intact' (opens; every acknowledged event as written) or 'refused'."""
    try:
        got = _events(path)
    except CorruptStore:
        return "refused"
    assert [(s, st, v, t) for s, _, st, v, t in got] == [(s, st, v, t) for s, _, st, v, t in acked]
    return "intact"


@pytest.mark.parametrize("cut", [0.0, 0.1, 0.5, 0.9, 0.999])
def test_a_cut_wal_is_refused_not_silently_shorter(
    crashed: tuple[dict[str, bytes], list[Any]], tmp_path: Path, cut: float
) -> None:
    files, acked = crashed
    wal = files["s.engram-wal"]
    page_size, frames = _frames(wal)
    assert frames > 100, frames
    keep = 32 + int(frames * cut) * (24 + page_size) + (24 + page_size // 2) * (cut > 0.5)
    path = _copy({**files, "s.engram-wal": wal[:keep]}, tmp_path / "v")
    assert _check_variant(path, acked) == "refused", f"cut={cut}: commits were lost silently"
    with pytest.raises(CorruptStore, match="are gone"):
        Memory.open(path, embedder=None)


def test_flipped_bytes_in_the_wal_are_refused(
    crashed: tuple[dict[str, bytes], list[Any]], tmp_path: Path
) -> None:
    files, acked = crashed
    wal = files["s.engram-wal"]
    page_size, frames = _frames(wal)
    rng = random.Random(SEED)
    outcomes = []
    for k in range(20):
        frame = rng.randrange(frames)
        pos = 32 + frame * (24 + page_size) + rng.randrange(24 + page_size)
        bad = bytearray(wal)
        bad[pos] ^= 1 << rng.randrange(8)
        path = _copy({**files, "s.engram-wal": bytes(bad)}, tmp_path / f"v{k}")
        outcomes.append(_check_variant(path, acked))
    # SQLite drops the flipped frame's commit and every later one: never silently
    assert outcomes.count("refused") == len(outcomes), f"seed={SEED}: {outcomes}"


def test_check_names_a_lost_tail_and_exits_8(
    crashed: tuple[dict[str, bytes], list[Any]], tmp_path: Path
) -> None:
    files, _ = crashed
    wal = files["s.engram-wal"]
    path = _copy({**files, "s.engram-wal": wal[: len(wal) // 2]}, tmp_path / "v")
    report = Memory.check_file(path, opening="probe")
    assert not report.ok
    result = CliRunner().invoke(app, ["check", "-s", str(path), "--json"])
    assert result.exit_code == 8 or isinstance(result.exception, CorruptStore), result.output
    assert "are gone" in result.output


# --------------------------------------------------------------------------------------
# the db file
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def closed(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, list[Any], list[Any]]:
    """A cleanly closed store (everything in the db file): its bytes, its events, its rows."""
    path = tmp_path_factory.mktemp("closed") / "s.engram"
    log = SQLiteLog(str(path))
    for i in range(0, 120, 3):
        log.append([*_drafts(i), *_drafts(i + 1), *_drafts(i + 2)])
    log.close()
    (Path(str(path) + ".head")).unlink()  # db flips only: the marker is tested above
    return path.read_bytes(), _events(path), _rows(path)


def _rows(path: Path) -> list[Any]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT * FROM events ORDER BY seq").fetchall()
    finally:
        conn.close()


def _flip_trial(data: bytes, pos: int, bit: int, where: Path, good: list[Any],
                rows: list[Any]) -> str:
    bad = bytearray(data)
    bad[pos] ^= 1 << bit
    where.mkdir()
    path = where / "s.engram"
    path.write_bytes(bytes(bad))
    try:
        changed = _rows(path) != rows
    except sqlite3.DatabaseError:
        changed = True
    try:
        log = SQLiteLog(str(path), read_only=True)
    except EngramError:
        return "refused"
    try:
        try:
            got = [(e.seq, e.id, e.stream, e.version, e.payload.text) for e in log.read()]
        except EngramError:
            got = None
        assert got is None or got == good, (pos, bit, "a damaged event was read as valid")
        for seq in range(1, len(good) + 1):  # random access checks too
            try:
                e = log.get(seq)
            except EngramError:
                continue
            assert (e.seq, e.id, e.stream, e.version, e.payload.text) == good[seq - 1], (pos, bit)
    finally:
        log.close()
    try:
        problems = SQLiteLog(str(path), read_only=True, verify_open=False)
    except CorruptStore:
        return "detected"
    try:
        found = problems.verify()
    finally:
        problems.close()
    if changed:
        assert found, (pos, bit, "check missed a changed event")
        return "detected"
    return "harmless"


def test_single_bit_flips_in_the_db_file_never_pass_as_events(
    closed: tuple[bytes, list[Any], list[Any]], tmp_path: Path
) -> None:
    data, good, rows = closed
    rng = random.Random(SEED)
    # half anywhere in the file, half inside the stored events' text
    content = [data.index(f"acknowledged {i}\"".encode()) + rng.randrange(14)
               for i in rng.sample(range(len(good)), 30)]
    positions = [rng.randrange(len(data)) for _ in range(30)] + content
    outcomes = [
        _flip_trial(data, pos, rng.randrange(8), tmp_path / f"v{k}", good, rows)
        for k, pos in enumerate(positions)
    ]
    # every flip inside an event's content changed it, and each was caught
    assert all(o in ("refused", "detected") for o in outcomes[30:]), (SEED, outcomes)


def test_memory_refuses_a_flipped_event_and_check_names_it(tmp_path: Path) -> None:
    path = tmp_path / "s.engram"
    with Memory.open(path, embedder=None) as mem:
        ids = [mem.remember(f"fact number {i}").id for i in range(5)]
        third = mem.store.log.read_stream(ids[2])[0].seq
    data = bytearray(path.read_bytes())
    at = data.index(b"fact number 2")
    data[at + 5] ^= 0x20
    path.write_bytes(bytes(data))
    shutil.rmtree(str(path) + ".snapshots")  # so opening replays (and reads) every event
    with pytest.raises(CorruptStore, match=f"event {third} "):
        Memory.open(path, embedder=None)
    report = Memory.check_file(path)
    assert not report.ok
    assert [f.detail for f in report.problems][0].startswith(f"event {third} fails its checksum")
    result = CliRunner().invoke(app, ["check", "-s", str(path)])
    assert result.exit_code == 8 or isinstance(result.exception, CorruptStore), result.output
    assert f"event {third} fails" in " ".join(result.output.split())


def test_export_refuses_a_broken_chain_unless_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("pyarrow")
    monkeypatch.setattr(sqlite_module, "TAIL_CHECK", 2)  # damage far behind the head
    path = tmp_path / "s.engram"
    with Memory.open(path, embedder=None) as mem:
        ids = [mem.remember(f"fact number {i}").id for i in range(8)]
        second = mem.store.log.read_stream(ids[1])[0].seq
    data = bytearray(path.read_bytes())
    data[data.index(b"fact number 1") + 5] ^= 0x20
    path.write_bytes(bytes(data))
    out = tmp_path / "out.parquet"
    with Memory.open(path, embedder=None, read_only=True) as mem:  # snapshots: no replay
        report = mem.check()
        assert not report.ok
        assert report.problems[0].detail.startswith(f"event {second} fails its checksum")
        with pytest.raises(CorruptStore, match=f"event {second} "):
            mem.export_events(out)
        assert not out.exists()
        assert mem.export_events(out, allow_damaged=True) == mem.seq
    monkeypatch.setenv("ENGRAM_EMBEDDER", "none")  # as written: no vectors to replay
    result = CliRunner().invoke(app, ["export", str(tmp_path / "cli.parquet"), "-s", str(path)])
    assert isinstance(result.exception, CorruptStore), result.output
    assert "fails its checksum" in str(result.exception)
    assert not (tmp_path / "cli.parquet").exists()
    result = CliRunner().invoke(app, ["export", str(tmp_path / "cli.parquet"), "-s", str(path),
                                      "--allow-damaged"])
    assert result.exit_code == 0, result.output


def test_the_readme_backups_restore_a_checked_store(tmp_path: Path) -> None:
    """SQLite's online backup of a store in use is a whole store of its own."""
    path, copy = tmp_path / "s.engram", tmp_path / "backup.engram"
    mem = Memory.open(path, embedder=None)
    try:
        ids = [mem.remember(f"fact {i}").id for i in range(20)]
        src, dst = sqlite3.connect(path), sqlite3.connect(copy)
        src.backup(dst)  # while the writer is open
        src.close()
        dst.close()
        mem.remember("after the backup")
    finally:
        mem.close()
    with Memory.open(copy, embedder=None) as restored:
        assert all(restored.exists(i) for i in ids)
        assert restored.check().ok

"""A store path no store can live at is a clear error that creates nothing, and an
export never overwrites a store (its own file, through a symlink or hard link, or
another store), nor an earlier export without ``--force`` / ``overwrite=True``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engramdb import InvalidStorePath, Memory, TargetExists, TargetIsStore
from engramdb.adapters.cli import app, main
from engramdb.errors import CorruptStore, NotFound, error_info
from engramdb.recall.embed import HashingEmbedder

runner = CliRunner()


@pytest.fixture(autouse=True)
def hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGRAM_EMBEDDER", "hashing")


def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        *args: str) -> tuple[int, str]:
    """``engram ARGS`` through main(): (exit code, stderr)."""
    monkeypatch.setattr(sys, "argv", ["engram", *args])
    with pytest.raises(SystemExit) as info:
        main()
    return int(info.value.code or 0), capsys.readouterr().err


def make_store(path: Path, n: int = 3) -> list[bytes]:
    with Memory.open(str(path), embedder=HashingEmbedder()) as mem:
        for i in range(n):
            mem.remember(f"fact number {i}", domain="d")
        return [r.payload for r in mem.store.log.read_raw()]


def payloads(path: Path) -> list[bytes]:
    with Memory.open(str(path), embedder=HashingEmbedder(), read_only=True) as mem:
        assert mem.check().ok
        return [r.payload for r in mem.store.log.read_raw()]


# -- export never overwrites a store ----------------------------------------------


def test_export_onto_its_own_store_in_every_disguise_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "a.engram"
    before = make_store(store)
    (tmp_path / "link.engram").symlink_to(store)
    os.link(store, tmp_path / "hard.engram")
    targets = [store, tmp_path / "link.engram", tmp_path / "hard.engram",
               tmp_path / "a.engram-wal", tmp_path / "a.engram.lock",
               tmp_path / "sub" / ".." / "a.engram"]
    (tmp_path / "sub").mkdir()
    for target in targets:
        code, err = cli(monkeypatch, capsys, "export", str(target), "--force", "-s", str(store))
        assert code == error_info(TargetIsStore("x"))["exit_code"] and "target_is_store" in err
    assert payloads(store) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == []


def test_export_onto_another_store_is_refused_even_with_force(tmp_path: Path) -> None:
    a, b = tmp_path / "a.engram", tmp_path / "b.engram"
    kept = make_store(a, 2)
    make_store(b, 4)
    for force in ([], ["--force"]):
        result = runner.invoke(app, ["export", str(a), *force, "-s", str(b)])
        assert isinstance(result.exception, TargetIsStore)
    assert payloads(a) == kept


def test_an_earlier_export_is_replaced_only_with_force(tmp_path: Path) -> None:
    store, out = tmp_path / "s.engram", tmp_path / "out.parquet"
    make_store(store, 2)
    assert runner.invoke(app, ["export", str(out), "-s", str(store)]).exit_code == 0
    first = out.read_bytes()
    with Memory.open(str(store), embedder=HashingEmbedder()) as mem:
        mem.remember("one more")
        with pytest.raises(TargetExists) as info:
            mem.export_events(out)
        assert not isinstance(info.value, TargetIsStore) and info.value.code == "target_exists"
        assert out.read_bytes() == first
        assert mem.export_events(out, overwrite=True) == len(list(mem.store.log.read_raw()))
    assert out.read_bytes() != first
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    assert isinstance(runner.invoke(app, ["export", str(notes), "-s", str(store)]).exception,
                      TargetExists)
    assert notes.read_text() == "mine"


def test_an_in_memory_store_will_not_export_onto_a_store_file(tmp_path: Path) -> None:
    target = tmp_path / "t.engram"
    kept = make_store(target, 1)
    with Memory.open(":memory:", embedder=None) as mem:
        mem.remember("x")
        with pytest.raises(TargetIsStore):
            mem.export_events(target, overwrite=True)
        with pytest.raises(InvalidStorePath):
            mem.export_events(tmp_path)  # a directory
    assert payloads(target) == kept


# -- unusable store paths -----------------------------------------------------------


def test_an_empty_store_path_is_an_error_that_leaves_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidStorePath) as info:
        Memory.open("", embedder=None)
    assert info.value.code == "invalid_store_path"
    for args in (["remember", "x", "-s", ""], ["token", "create", "-n", "a", "-s", ""],
                 ["stats", "-s", " "]):
        code, err = cli(monkeypatch, capsys, *args)
        assert code == 2 and "invalid_store_path" in err, (args, err)
    assert list(tmp_path.iterdir()) == []


def test_directories_unwritable_places_and_foreign_files_create_nothing(
        tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    export = tmp_path / "e.parquet"
    make_store(tmp_path / "src.engram", 1)
    with Memory.open(str(tmp_path / "src.engram"), embedder=None) as mem:
        mem.export_events(export)
    (tmp_path / "notes.txt").write_text("not a store at all")
    before = sorted(p.name for p in tmp_path.iterdir())
    cases: list[tuple[str, type[Exception]]] = [
        (str(tmp_path / "dir"), InvalidStorePath), (str(tmp_path / "dir") + "/", InvalidStorePath),
        (str(export), InvalidStorePath), (str(tmp_path / "notes.txt"), CorruptStore),
        ("/proc/engram-test.engram", InvalidStorePath),  # no file can be created there
        (str(tmp_path / "a\x00b"), InvalidStorePath),
    ]
    if os.geteuid() != 0:  # root may write anywhere: a read-only directory stops no one
        (tmp_path / "ro").mkdir(mode=0o555)
        cases.append((str(tmp_path / "ro" / "x.engram"), InvalidStorePath))
        before.append("ro")
    for path, error in cases:
        with pytest.raises(error):
            Memory.open(path, embedder=None)
        with pytest.raises(NotFound if error is InvalidStorePath and path.endswith(".engram")
                           else error):  # a reader needs nothing written: missing is 404
            Memory.open(path, embedder=None, read_only=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(before)
    assert list((tmp_path / "dir").iterdir()) == []

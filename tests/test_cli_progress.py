"""Progress bars of the CLI's long operations: on stderr only, never on stdout (JSON
output stays parseable), drawn on a terminal (a real pty here) or when forced with
ENGRAM_PROGRESS=always, and not at all into a pipe by default."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from engramdb import Memory
from engramdb.adapters.cli_progress import Bars
from engramdb.progress import Step, stage, track, watch
from engramdb.recall.embed import HashingEmbedder


def make_store(tmp_path: Path, n: int = 40, *, drop_snapshots: bool = True) -> str:
    store = str(tmp_path / "p.engram")
    with Memory.open(store, embedder=HashingEmbedder()) as mem:
        ids = [m.id for m in mem.remember_many([{"text": f"memory {i}"} for i in range(n)])]
        mem.forget(ids[0])
    if drop_snapshots:
        shutil.rmtree(store + ".snapshots", ignore_errors=True)  # the next open replays
    return store


def engram(*args: str, mode: str | None = "always", **kw: object) -> subprocess.CompletedProcess:
    env = {**os.environ, "ENGRAM_EMBEDDER": "hashing", "COLUMNS": "120"}
    env.pop("ENGRAM_PROGRESS", None)
    if mode is not None:
        env["ENGRAM_PROGRESS"] = mode
    return subprocess.run([sys.executable, "-m", "engramdb.adapters.cli", *args],
                          capture_output=True, text=True, env=env, timeout=300, **kw)


def test_track_costs_nothing_unwatched_and_reports_when_watched() -> None:
    items = [1, 2, 3]
    assert track("x", items, total=3) is items
    seen: list[Step] = []
    with watch(seen.append):
        assert list(track("x", items, total=3)) == items
        with stage("y"):
            pass
    assert seen[0] == Step("x", 0, 3) and Step("x", 3, 3, finished=True) in seen
    assert seen[-2:] == [Step("y", 0, None), Step("y", 1, 1, finished=True)]


def test_bars_draw_on_their_console() -> None:
    out = io.StringIO()
    drawer = Bars("always", Console(file=out, force_terminal=True, width=100))
    drawer(Step("replay", 0, 10))
    drawer(Step("replay", 5, 10))
    drawer(Step("replay", 10, 10, finished=True))
    assert "replaying the log" in out.getvalue()


@pytest.mark.parametrize(("args", "label"), [
    (("stats",), "replaying the log"),                      # opening a store
    (("compact",), "rebuilding projections"),
    (("check", "--json"), "replaying for the check"),
])
def test_each_long_command_draws_on_stderr_only(tmp_path: Path, args: tuple[str, ...],
                                                label: str) -> None:
    store = make_store(tmp_path)
    r = engram(*args, "--store", store)
    assert r.returncode == 0, r.stderr
    assert label in r.stderr
    assert label not in r.stdout and "\x1b" not in r.stdout
    if "--json" in args or args == ("stats",):
        json.loads(r.stdout)  # nothing but the JSON


def test_export_import_and_ingest_bars(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    store = make_store(tmp_path)
    out = str(tmp_path / "e.parquet")
    r = engram("export", out, "--store", store)
    assert r.returncode == 0, r.stderr
    assert "exporting events" in r.stderr and r.stdout.startswith("exported ")
    r = engram("import", out, "--store", str(tmp_path / "copy.engram"))
    assert r.returncode == 0, r.stderr
    assert "importing events" in r.stderr and "rebuilding projections" in r.stderr
    assert r.stdout.startswith("imported ")
    lines = tmp_path / "m.jsonl"
    lines.write_text("".join(json.dumps({"text": f"note {i}"}) + "\n" for i in range(30)))
    r = engram("ingest", str(lines), "--json", "--store", str(tmp_path / "i.engram"))
    assert r.returncode == 0, r.stderr
    assert "ingesting" in r.stderr and json.loads(r.stdout)["memories"] == 30


def test_reembed_bar(tmp_path: Path) -> None:
    store = make_store(tmp_path, n=12, drop_snapshots=False)
    r = engram("reembed", "--to", "default", "--json", "--store", store)
    assert r.returncode == 0, r.stderr
    assert "embedding memories" in r.stderr
    report = json.loads(r.stdout)
    assert report["embedded"] == 11 and "MiniLM" in report["model"]


def test_no_bars_into_a_pipe_by_default(tmp_path: Path) -> None:
    store = make_store(tmp_path, n=600)  # 1200+ events to replay: over the threshold
    r = engram("check", "--json", "--store", store, mode=None)
    assert r.returncode == 0, r.stderr
    assert "replaying" not in r.stderr and json.loads(r.stdout)["ok"] is True


def test_bars_on_a_real_terminal(tmp_path: Path) -> None:
    """stderr is a pty (as in a terminal), stdout a pipe: bars there, clean JSON here."""
    store = make_store(tmp_path, n=600)
    master, slave = os.openpty()
    env = {**os.environ, "ENGRAM_EMBEDDER": "hashing", "TERM": "xterm"}
    env.pop("ENGRAM_PROGRESS", None)
    proc = subprocess.Popen([sys.executable, "-m", "engramdb.adapters.cli", "check", "--json",
                             "--store", store], stdout=subprocess.PIPE, stderr=slave, env=env)
    os.close(slave)
    drawn = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        drawn += chunk
    stdout, _ = proc.communicate(timeout=300)
    os.close(master)
    assert proc.returncode == 0
    assert b"replaying the log" in drawn
    assert json.loads(stdout)["ok"] is True

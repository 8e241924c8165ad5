"""``engram ingest / export / import / check / index / as-of``, in process.

Every store here uses the hashing embedder (``ENGRAM_EMBEDDER=hashing``), so no
model is loaded; error exit codes go through :func:`main`, as the shell sees them.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from engramdb import Memory
from engramdb.adapters.cli import app, main
from engramdb.errors import CorruptStore, EngramError
from engramdb.recall.embed import HashingEmbedder
from engramdb.store import SnapshotFiles

runner = CliRunner()


@pytest.fixture(autouse=True)
def hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGRAM_EMBEDDER", "hashing")


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def exit_code(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    """Run ``engram ARGS`` through main(), which maps errors to exit codes."""
    monkeypatch.setattr(sys, "argv", ["engram", *args])
    with pytest.raises(SystemExit) as info:
        main()
    return int(info.value.code or 0)


def open_mem(path: Path, **kw: Any) -> Memory:
    return Memory.open(str(path), embedder=HashingEmbedder(), **kw)


def raw_log(path: Path) -> list[Any]:
    with open_mem(path, read_only=True) as mem:
        return list(mem.store.log.read_raw())


# -- ingest ----------------------------------------------------------------------


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


JSONL = [
    {"text": "Deploys moved to Tuesdays", "domain": "ops", "agent": "bot"},
    {"text": "Maya leads the platform team", "name": "Maya", "domain": "people",
     "attrs": {"team": "platform"}, "valid_from": "2026-01-01"},
    {"speaker": "Ann", "text": "Why did the staging deploy fail?", "session": "s1",
     "time": "2026-03-01", "id": "s1:1"},
    {"role": "Ben", "content": "The database migration timed out.", "session": "s1"},
    {"speaker": "Ann", "text": "Next week then.", "session": "s2"},
]


def test_ingest_jsonl_memories_and_turns(tmp_path: Path) -> None:
    store = str(tmp_path / "s.engram")
    src = write_jsonl(tmp_path / "in.jsonl", JSONL)
    code, out = run("ingest", str(src), "-s", store, "--json")
    assert code == 0, out
    summary = json.loads(out)
    assert (summary["format"], summary["memories"], summary["sessions"]) == ("jsonl", 5, 2)
    assert summary["commits"] == 3  # one batch of memories, then one commit per session
    with open_mem(Path(store), read_only=True) as mem:
        hits = mem.recall("migration timed out", k=1)
        turn = hits[0].node
        assert turn.text == "Ben: The database migration timed out."
        assert (turn.kind, turn.domain, turn.attrs["session"], turn.attrs["turn"]) == (
            "turn", "conversation", "s1", 1)
        # the session's time applies to turns that give none; next edges link turns
        assert turn.valid_from == mem.find("Maya").valid_from + 59 * 86_400 * 10**6
        assert [n.node.text for n in mem.neighbors(turn.id, direction="in")] == [
            "Ann: Why did the staging deploy fail?"]
        maya = mem.find("Maya")
        assert (maya.domain, maya.attrs) == ("people", {"team": "platform"})
        assert mem.history(hits[0].id)[0].meta.session == "s1"


def test_ingest_table_output_and_domain_option(tmp_path: Path) -> None:
    store = str(tmp_path / "s.engram")
    src = write_jsonl(tmp_path / "in.jsonl", JSONL[2:])
    code, out = run("ingest", str(src), "-s", store, "--domain", "chat", "--quiet")
    assert code == 0
    assert "ingested" in out and "memories/s" in out and "jsonl" in out
    with open_mem(Path(store), read_only=True) as mem:
        assert mem.domains() == {"chat": 3}


def locomo_file(path: Path) -> Path:
    sample = {
        "sample_id": "conv-1",
        "conversation": {
            "speaker_a": "Caroline", "speaker_b": "Mel",
            "session_2": [{"speaker": "Mel", "dia_id": "D2:1", "text": "I ran a charity race."}],
            "session_2_date_time": "1:56 pm on 8 May, 2023",
            "session_1": [
                {"speaker": "Caroline", "dia_id": "D1:1", "text": "I went to a support group."},
                {"speaker": "Mel", "dia_id": "D1:2", "text": "Look at this!",
                 "blip_caption": "a photo of a sunset"},
            ],
            "session_1_date_time": "7:55 pm on 2 May, 2023",
        },
        "qa": [],
    }
    path.write_text(json.dumps([sample]))
    return path


def test_ingest_locomo_detected_by_content(tmp_path: Path) -> None:
    store = str(tmp_path / "s.engram")
    code, out = run("ingest", str(locomo_file(tmp_path / "data.json")), "-s", store, "--json")
    assert code == 0, out
    summary = json.loads(out)
    assert (summary["format"], summary["memories"], summary["sessions"]) == ("locomo", 3, 2)
    with open_mem(Path(store), read_only=True) as mem:
        [hit] = mem.recall("sunset photo", k=1)
        assert hit.text == "Mel: Look at this! [shares a photo: a photo of a sunset]"
        assert hit.node.attrs["dia_id"] == "D1:2"
        assert hit.node.attrs["session"] == "conv-1:session_1"
        assert hit.node.valid_from == Memory_us("2023-05-02T19:55:00")
        # sessions in numeric order: session_1's turns come first
        first = mem.history(hit.id)[0].seq
        race = mem.recall("charity race", k=1)[0]
        assert mem.history(race.id)[0].seq > first


def Memory_us(iso: str) -> int:  # reads like a constructor in the asserts
    from engramdb.events import to_us

    value = to_us(iso)
    assert value is not None
    return value


def longmemeval_file(path: Path) -> Path:
    shared = [{"role": "user", "content": "I adopted a cat named Luna."},
              {"role": "assistant", "content": "Congratulations on Luna!", "has_answer": True}]
    questions = [
        {"question_id": "q1", "question": "What is my cat's name?", "answer": "Luna",
         "haystack_session_ids": ["sess_a", "sess_b"],
         "haystack_dates": ["2023/05/20 (Sat) 02:21", "2023/05/21 (Sun) 10:00"],
         "haystack_sessions": [shared, [{"role": "user", "content": "I like hiking."}]]},
        {"question_id": "q2", "question": "Where do I hike?", "answer": "Alps",
         "haystack_session_ids": ["sess_a"], "haystack_dates": ["2023/05/20 (Sat) 02:21"],
         "haystack_sessions": [shared]},
    ]
    path.write_text(json.dumps(questions))
    return path


def test_ingest_longmemeval_once_per_session(tmp_path: Path) -> None:
    store = str(tmp_path / "s.engram")
    code, out = run("ingest", str(longmemeval_file(tmp_path / "lme.json")), "-s", store,
                    "--json")
    assert code == 0, out
    summary = json.loads(out)
    assert (summary["format"], summary["memories"], summary["sessions"]) == ("longmemeval", 3, 2)
    with open_mem(Path(store), read_only=True) as mem:
        [hit] = mem.recall("cat named Luna", k=1)
        assert hit.text == "user: I adopted a cat named Luna."
        assert hit.node.attrs["session"] == "sess_a"
        assert hit.node.valid_from == Memory_us("2023-05-20T02:21:00")
        answer = mem.neighbors(hit.id)[0].node
        assert answer.attrs["has_answer"] is True


@pytest.mark.parametrize(
    ("rows", "fmt", "code"),
    [
        ([{"text": "fine"}, "{not json"], None, 2),
        ([{"text": "fine"}, {"text": 5}], None, 2),
        ([{"text": "fine"}, {"txt": "typo"}], None, 2),
        ([{"speaker": "A"}], None, 2),
        ([{"speaker": "A", "text": "hi", "session": "s1"},
          {"speaker": "B", "text": "yo", "session": "s2", "time": "next tuesday"}], None, 2),
        ([{"text": "fine"}, {"text": "x", "valid_from": [2026]}], None, 2),
        ([{"text": "fine"}, {"text": "x", "id": "no spaces allowed"}], None, 2),
        ([{"text": "fine"}], "csv", 2),
        (["[1, 2, 3]"], None, 2),  # JSON, but no format we know
    ],
)
def test_bad_ingest_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    rows: list[Any], fmt: str | None, code: int) -> None:
    store = tmp_path / "s.engram"
    src = write_jsonl(tmp_path / "bad.jsonl", rows)
    args = ["ingest", str(src), "-s", str(store), *(["--format", fmt] if fmt else [])]
    assert exit_code(monkeypatch, *args) == code
    with open_mem(store, read_only=True) as mem:
        assert mem.seq == 0


def test_ingest_missing_file_is_not_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert exit_code(monkeypatch, "ingest", str(tmp_path / "nope.jsonl"), "-s",
                     str(tmp_path / "s.engram")) == 3


# -- export / import -------------------------------------------------------------


def build_store(path: Path) -> None:
    with open_mem(path) as mem:
        maya = mem.remember("Maya lives in Berlin", name="Maya", domain="people",
                            attrs={"city": "Berlin", "n": 1.25}, agent="ext", session="s1",
                            valid_from="2026-01-01", valid_to="2027-01-01")
        acme = mem.remember("Acme Robotics builds schedulers", name="Acme", domain="companies")
        mem.relate(maya.id, "works_at", acme.id, attrs={"since": 2024})
        mem.update(maya.id, text="Maya lives in Lisbon", attrs={"city": "Lisbon"}, source="s3")
        secret = mem.remember("the door code is 4711", domain="people")
        mem.forget(secret.id, reason="asked")
        mem.compact()
        other = mem.namespaced("team-b")
        other.ingest_conversation([{"speaker": "A", "text": "hello"},
                                   {"speaker": "B", "text": "hi there"}], session="c1")
        mem.unrelate(maya.id, "works_at", acme.id)


def test_export_import_round_trip_is_lossless(tmp_path: Path) -> None:
    source, target = tmp_path / "a.engram", tmp_path / "b.engram"
    build_store(source)
    out = str(tmp_path / "log.parquet")
    code, text = run("export", out, "-s", str(source))
    assert code == 0 and "exported" in text
    code, text = run("import", out, "-s", str(target))
    assert code == 0 and "imported" in text
    before, after = raw_log(source), raw_log(target)
    assert len(before) > 10 and after == before  # every field, payload bytes included
    assert any(r.type == "event.redacted" for r in after)
    assert {r.namespace for r in after} == {"default", "team-b"}
    with open_mem(source, read_only=True) as a, open_mem(target, read_only=True) as b:
        assert list(a.store.log.read()) == list(b.store.log.read())
        for query in ("where does Maya live", "schedulers", "door code"):
            assert [(h.id, h.score) for h in a.recall(query)] == [
                (h.id, h.score) for h in b.recall(query)]
        maya = a.find("Maya").id
        assert b.as_of(3).get(maya).text == "Maya lives in Berlin"
        assert b.provenance(maya, "attrs.city").source == "s3"
        assert b.check().ok


def parquet_text(path: Path) -> str:
    import pyarrow.parquet as pq

    return json.dumps(pq.read_table(path).to_pylist(), default=str)


def test_export_never_carries_forgotten_content(tmp_path: Path) -> None:
    store = tmp_path / "a.engram"
    with open_mem(store) as mem:
        keep = mem.remember("Acme Robotics builds schedulers", name="Acme")
        secret = mem.remember("the vault code is 93-71-12", name="Vault", domain="secrets")
        mem.relate(keep.id, "guards", secret.id, attrs={"note": "vault code 93-71-12"})
        mem.forget(secret.id)  # forgotten, not yet compacted
        plain, full = tmp_path / "plain.parquet", tmp_path / "full.parquet"
        mem.export_events(plain)
        mem.export_events(full, include_forgotten=True)
    assert "93-71-12" not in parquet_text(plain)
    assert "93-71-12" in parquet_text(full)  # the opt-in really is the whole log
    with open_mem(store) as mem:
        mem.compact()
    compacted = raw_log(store)
    target = tmp_path / "b.engram"
    with open_mem(target) as mem:
        mem.import_events(plain)
    assert raw_log(target) == compacted  # the export is the store as compaction leaves it


def test_import_is_refused_by_a_non_empty_store(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    source, target = tmp_path / "a.engram", tmp_path / "b.engram"
    build_store(source)
    out = str(tmp_path / "log.parquet")
    assert run("export", out, "-s", str(source))[0] == 0
    with open_mem(target) as mem:
        mem.remember("already here")
    before = raw_log(target)
    assert exit_code(monkeypatch, "import", out, "-s", str(target)) == 4  # Conflict
    assert raw_log(target) == before


def test_import_of_something_else_is_invalid(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"seq": [1]}), other)
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet at all")
    store = tmp_path / "t.engram"
    assert exit_code(monkeypatch, "import", str(other), "-s", str(store)) == 2
    assert exit_code(monkeypatch, "import", str(junk), "-s", str(store)) == 2
    assert exit_code(monkeypatch, "import", str(tmp_path / "none.parquet"), "-s",
                     str(store)) == 3
    assert raw_log(store) == []


def test_import_of_a_tampered_export_writes_nothing(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = tmp_path / "a.engram"
    build_store(source)
    out = tmp_path / "log.parquet"
    assert run("export", str(out), "-s", str(source))[0] == 0
    table = pq.read_table(out)
    seqs = table.column("seq").to_pylist()
    seqs[4] = 99  # a gap
    pq.write_table(table.set_column(0, table.schema.field("seq"), pa.array(seqs, pa.int64())),
                   out)
    target = tmp_path / "b.engram"
    assert exit_code(monkeypatch, "import", str(out), "-s", str(target)) == 2
    assert raw_log(target) == []


def test_export_without_pyarrow_says_what_to_install(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with open_mem(tmp_path / "a.engram") as mem, pytest.raises(EngramError, match=r"\[parquet\]"):
        mem.export_events(tmp_path / "x.parquet")
    assert not (tmp_path / "x.parquet").exists()


# -- check -----------------------------------------------------------------------


def test_check_a_healthy_store(tmp_path: Path) -> None:
    store = tmp_path / "a.engram"
    build_store(store)
    code, out = run("check", "-s", str(store), "--json")
    assert code == 0, out
    report = json.loads(out)
    assert report["ok"] is True
    kinds = {(f["check"], f["subject"]) for f in report["findings"]}
    assert {("projection", "nodes"), ("projection", "text"), ("projection", "vectors"),
            ("snapshot", "nodes.snap"), ("snapshot", "text.snap")} <= kinds
    code, out = run("check", "-s", str(store))
    assert code == 0 and "equals a full replay" in out


def test_check_after_snapshot_and_tail(tmp_path: Path) -> None:
    """Snapshots restored on open, then more writes: still agrees with a replay."""
    store = tmp_path / "a.engram"
    build_store(store)
    with open_mem(store) as mem:
        assert mem.store.restored  # snapshots were used
        maya = mem.find("Maya")
        mem.update(maya.id, name="Maya R.")  # re-indexes the text under the new name
        mem.remember("tail memory", domain="ops")
        report = mem.check()
        assert report.ok, report.problems
        assert mem.recall("Lisbon", k=1, signals=("text",))[0].id == maya.id


def test_check_finds_a_damaged_snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "a.engram"
    build_store(store)
    snap = Path(f"{store}.snapshots") / "nodes.snap"
    data = bytearray(snap.read_bytes())
    data[-3] ^= 0xFF
    snap.write_bytes(bytes(data))
    assert exit_code(monkeypatch, "check", "-s", str(store), "--json") == 8
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert report["ok"] is False
    [bad] = [f for f in report["findings"] if not f["ok"]]
    assert (bad["subject"], bad["detail"]) == ("nodes.snap", "rejected: checksum mismatch")
    assert "[corrupt_store]" in err


def test_check_finds_a_snapshot_that_lies(tmp_path: Path) -> None:
    """A checksummed snapshot of the wrong state: only the replay comparison sees it."""
    store = tmp_path / "a.engram"
    with open_mem(store) as mem:
        mem.remember("first")
        early = mem.store.projection("adjacency").snapshot()
        a, b = mem.remember("a"), mem.remember("b")
        mem.relate(a.id, "r", b.id)
        head, epoch, sid = mem.seq, mem.store.epoch, mem.store.store_id
        chain = mem.store.log.chain_at(head)
    SnapshotFiles(f"{store}.snapshots", store_id=sid).write("adjacency", seq=head, epoch=epoch,
                                                            body=early, chain=chain)
    with open_mem(store, read_only=True) as mem:
        report = mem.check()
    assert not report.ok
    assert [(f.subject, f.ok) for f in report.problems] == [("adjacency", False),
                                                            ("adjacency.snap", False)]


def test_check_finds_a_damaged_log(tmp_path: Path) -> None:
    store = tmp_path / "a.engram"
    build_store(store)
    conn = sqlite3.connect(store)
    conn.execute("UPDATE events SET payload = x'7b7b' WHERE seq = 2")
    conn.commit()
    conn.close()
    # opening checks the chain of the log's tail: the damaged event is refused there ...
    with pytest.raises(CorruptStore, match="event 2 "):
        open_mem(store, read_only=True)
    # ... and the log alone is checked instead, naming it first
    report = Memory.check_file(store)
    assert [(f.check, f.ok) for f in report.problems][:1] == [("log", False)]
    assert report.problems[0].detail.startswith("event 2 fails its checksum")


def test_check_of_a_missing_store_is_not_found(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    assert exit_code(monkeypatch, "check", "-s", str(tmp_path / "none.engram")) == 3
    assert not os.path.exists(tmp_path / "none.engram")


# -- index, as-of, history --as-of ---------------------------------------------------


def test_index_prints_the_compressed_index(tmp_path: Path) -> None:
    store = tmp_path / "a.engram"
    build_store(store)
    code, out = run("index", "-s", str(store))
    assert code == 0 and "Maya" in out and "people" in out
    code, out = run("index", "-s", str(store), "--json", "--as-of", "1")
    assert code == 0
    doc = json.loads(out)
    assert doc["seq"] == 1 and "Acme" not in doc["index"] and "Maya" in doc["index"]


def test_as_of_shows_the_past(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "a.engram"
    build_store(store)
    code, out = run("as-of", "2", "-s", str(store), "--json")
    assert code == 0
    doc = json.loads(out)
    assert (doc["seq"], doc["domains"]) == (2, {"people": 1})
    code, out = run("as-of", "3", "where does Maya live", "-s", str(store), "--json", "-k", "1")
    assert json.loads(out)["hits"][0]["text"] == "Maya lives in Berlin"
    code, out = run("as-of", "2099-01-01", "Maya", "-s", str(store))
    assert code == 0 and "Lisbon" in out
    assert exit_code(monkeypatch, "as-of", "yesterday", "-s", str(store)) == 2


def test_history_as_of(tmp_path: Path) -> None:
    store = tmp_path / "a.engram"
    build_store(store)
    with open_mem(store, read_only=True) as mem:
        maya = mem.find("Maya").id
    code, out = run("history", maya, "-s", str(store), "--json")
    assert code == 0, out
    assert [e["type"] for e in json.loads(out)] == ["node.created", "vector.stored",
                                                    "node.updated", "vector.stored"]
    code, out = run("history", maya, "-s", str(store), "--json", "--as-of", "3")
    assert code == 0, out
    assert [e["type"] for e in json.loads(out)] == ["node.created", "vector.stored"]


def test_in_memory_stores_export_import_and_check(tmp_path: Path) -> None:
    with Memory.open(":memory:", embedder=HashingEmbedder()) as a:
        node = a.remember("Maya lives in Berlin", name="Maya", domain="people")
        a.update(node.id, text="Maya lives in Lisbon")
        a.forget(a.remember("temporary").id)
        assert a.check().ok
        exported = a.export_events(tmp_path / "m.parquet", include_forgotten=True)
        assert exported == len(list(a.store.log.read()))
        with Memory.open(":memory:", embedder=HashingEmbedder()) as b:
            b.import_events(tmp_path / "m.parquet")
            assert list(b.store.log.read()) == list(a.store.log.read())
            assert b.get(node.id).text == "Maya lives in Lisbon"
            report = b.check()
            assert report.ok and all(f.check != "snapshot" for f in report.findings)

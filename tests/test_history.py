"""Time travel, provenance and forgetting, through the facade."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engramdb import Memory, NotFound, View


def test_as_of_by_time_and_by_seq() -> None:
    with Memory.open(":memory:", embedder=None) as mem:
        first = datetime.now(UTC)
        time.sleep(0.002)
        a = mem.remember("v1", domain="d")
        time.sleep(0.002)
        between = datetime.now(UTC)
        time.sleep(0.002)
        mem.update(a.id, text="v2", domain="e")
        assert mem.as_of(between).get(a.id).text == "v1"
        assert mem.as_of(a.seq).domains() == {"d": 1}
        assert mem.get(a.id).text == "v2" and mem.domains() == {"e": 1}
        with pytest.raises(NotFound):
            mem.as_of(first).get(a.id)
        assert mem.as_of(first).domains() == {}
        assert isinstance(mem.as_of(0), View) and not hasattr(mem.as_of(0), "remember")


def test_provenance_names_the_event_agent_and_session() -> None:
    with Memory.open(":memory:", embedder=None) as mem:
        n = mem.remember("x", domain="d", attrs={"city": "Berlin"}, agent="a1", session="s1",
                         source="chat#1")
        mem.update(n.id, attrs={"city": "Lisbon"}, agent="a2", session="s2", source="chat#2")
        mem.update(n.id, domain="e", agent="a3", session="s3")
        city = mem.provenance(n.id, "attrs.city")
        assert (city.value, city.agent, city.session, city.source) == (
            "Lisbon", "a2", "s2", "chat#2"
        )
        text = mem.provenance(n.id, "text")
        assert (text.agent, text.seq) == ("a1", n.seq)
        assert mem.provenance(n.id, "domain").agent == "a3"
        old = mem.as_of(n.seq).provenance(n.id, "attrs.city")
        assert (old.value, old.agent) == ("Berlin", "a1")
        with pytest.raises(NotFound):
            mem.provenance(n.id, "attrs.nope")


def test_forget_masks_now_and_compact_erases_bytes(tmp_path: Path) -> None:
    path = tmp_path / "f.engram"
    with Memory.open(path, embedder=None) as mem:
        keep = mem.remember("KEEP-MARKER-314 stays", domain="d")
        gone = mem.remember("FORGET-MARKER-271 goes", domain="d", attrs={"pin": "FORGET-PIN-9"})
        mem.relate(keep.id, "knows", gone.id, attrs={"note": "FORGET-EDGE-5"})
        mem.update(gone.id, text="FORGET-MARKER-271 updated")
        before = mem.seq
        mem.snapshot()
        mem.forget(gone.id, reason="user request", agent="alice")
        for view in (mem, mem.as_of(before)):
            with pytest.raises(NotFound):
                view.get(gone.id)
        trail = mem.history(gone.id)
        assert trail[-1].type == "node.forgotten" and trail[-1].meta.agent == "alice"
        assert all("FORGET" not in repr(e.payload) for e in trail)
        assert mem.neighbors(keep.id) == []
        assert mem.compact() >= 3
        files = mem.files()
    for marker, present in ((b"FORGET", False), (b"KEEP-MARKER-314", True)):
        found = any(marker in Path(f).read_bytes() for f in files if Path(f).is_file())
        assert found == present, (marker, files)
    with Memory.open(path, embedder=None) as mem:
        assert mem.get(keep.id).text.startswith("KEEP")
        assert [e.type for e in mem.history(gone.id)][-1] == "node.forgotten"

"""Forget forgets everything the caller gave (issue 9 item 13): after forget +
compact, no user-supplied field of the memory, of its edges or of the events
that name it is left in any file of the store or in the default export."""

from __future__ import annotations

from pathlib import Path

import pytest

from engramdb import Memory, NotFound
from engramdb.recall.embed import HashingEmbedder

DAY = 86_400_000_000

#: every value the caller supplied about the memory to forget (and its events)
SECRETS = {
    "chosen id": "Gone-Id-7731", "text": "GONE-TEXT-Maya-lives-in-Berlin",
    "updated text": "GONE-UPDATED-TEXT", "name": "GONE-NAME-Maya", "attr": "GONE-ATTR-VALUE",
    "attr key": "gone_attr_key_5", "domain": "gone-domain-3", "source": "GONE-SOURCE-chat-9",
    "session": "GONE-SESSION-42", "agent": "GONE-AGENT-bob", "relation": "GONE_REL_knows",
    "edge attr": "GONE-EDGE-NOTE", "goal": "GONE-GOAL-ship", "outcome": "gone_outcome_x",
    "staged text": "GONE-STAGED-TEXT", "staged session": "GONE-STAGED-SESSION",
    "user id": "GONE-USER-ada",  # a provenance field added after the redaction: covered too
}


def _present(files: list[str], marker: str) -> list[str]:
    needle = marker.encode()
    return [f for f in files if Path(f).is_file() and needle in Path(f).read_bytes()]


def _fill(mem: Memory) -> tuple[str, str]:
    s = SECRETS
    keep = mem.remember("KEEP-TEXT stays here", domain="kept", source="KEEP-SOURCE")
    gone = mem.remember(s["text"], id=s["chosen id"], name=s["name"], domain=s["domain"],
                        attrs={s["attr key"]: s["attr"]}, source=s["source"],
                        session=s["session"], agent=s["agent"], user_id=s["user id"])
    mem.update(gone.id, text=s["updated text"], agent=s["agent"], session=s["session"])
    mem.relate(keep.id, s["relation"], gone.id, attrs={"note": s["edge attr"]},
               agent=s["agent"], source=s["source"])
    mem.unrelate(keep.id, s["relation"], gone.id, agent=s["agent"])
    mem.relate(gone.id, s["relation"], keep.id, session=s["session"])
    mem.record_outcome(gone.id, s["outcome"], goal=s["goal"], agent=s["agent"])
    mem.get(gone.id)
    mem.get(keep.id)
    mem.flush_accesses()
    assert mem.consolidate(now=gone.created_at + 30 * DAY).moves  # a tier move of each
    with mem.context("plan", agent="ctx-agent") as ctx:  # its open/commit are its own
        ctx.update(gone.id, text=s["staged text"], session=s["staged session"])
        ctx.commit()
    mem.snapshot()
    return keep.id, gone.id


@pytest.mark.parametrize("secret", list(SECRETS))
def test_forget_and_compact_leave_no_user_field_on_disk(tmp_path: Path, secret: str) -> None:
    """Regression (issue 9 item 13): source, session, agent and the chosen id stayed."""
    path = tmp_path / "f.engram"
    with Memory.open(path, embedder=HashingEmbedder(dim=32), record_reads=True) as mem:
        keep, gone = _fill(mem)
        assert _present(mem.files(), SECRETS[secret])  # the scan sees it before
        tomb = mem.forget(gone, reason="erasure request", agent="the-eraser")
        mem.compact()
        files = mem.files()
        mem.export_events(tmp_path / "out.parquet")
        assert mem.check().ok
    files = [*files, str(tmp_path / "out.parquet")]
    assert _present(files, SECRETS[secret]) == []
    assert _present(files, "KEEP-TEXT") and _present(files, "KEEP-SOURCE")
    assert _present(files, "the-eraser")  # the tombstone keeps by whom
    with Memory.open(path, embedder=HashingEmbedder(dim=32)) as mem:
        assert mem.get(keep).text.startswith("KEEP") and mem.neighbors(keep) == []
        with pytest.raises(NotFound):
            mem.get(gone)
        kept = [e for e in mem.store.log.read() if e.type == "node.forgotten"]
        assert [(e.id, e.meta.agent, e.payload.reason) for e in kept] == [
            (tomb.id, "the-eraser", "erasure request")]
        assert mem.check().ok


def test_a_generated_id_keeps_its_history_tombstone(tmp_path: Path) -> None:
    with Memory.open(tmp_path / "g.engram", embedder=None) as mem:
        gone = mem.remember("x", source="GONE-SOURCE", session="GONE-SESSION")
        mem.forget(gone.id, agent="eraser")
        mem.compact()
        trail = mem.history(gone.id)
        assert trail[-1].type == "node.forgotten" and trail[-1].meta.agent == "eraser"
        assert all(e.meta.source is None and e.meta.session is None for e in trail)
        assert not _present(mem.files(), "GONE-S")

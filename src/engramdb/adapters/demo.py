"""``engram demo``: a bundled conversation, remembered and questioned.

Shows, on a fresh store: ingesting a chat transcript with its speakers and
session dates, the graph and its cross-domain bridges, time travel ("where did
Maya live on March 20?"), provenance ("which conversation taught us that?"),
the compressed index, and forgetting for real.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..memory import Memory

__all__ = ["run_demo", "sample_conversation"]


def sample_conversation() -> dict[str, Any]:
    data = resources.files("engramdb").joinpath("data/sample_conversation.json").read_text()
    return json.loads(data)  # type: ignore[no-any-return]


def run_demo(console: Console, *, store: str | None = None, quiet: bool = False) -> None:
    tmp = None
    if store is None:
        tmp = tempfile.mkdtemp(prefix="engram-demo-")
        store = os.path.join(tmp, "demo.engram")
    try:
        with Memory.open(store, namespace="demo") as mem:
            _walkthrough(mem, console, quiet=quiet)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def _walkthrough(mem: Memory, console: Console, *, quiet: bool) -> None:
    convo = sample_conversation()
    say = console.print
    say(f"[bold]engramdb demo[/bold] — {convo['title']}")
    for session in convo["sessions"]:
        mem.ingest_conversation(
            [{"speaker": t["speaker"], "text": t["text"], "id": f"{session['id']}:{i}"}
             for i, t in enumerate(session["turns"], start=1)],
            session=session["id"], at=session["date"], domain="chat",
            source="sample_conversation.json",
        )
    turns = sum(len(s["turns"]) for s in convo["sessions"])
    say(f"remembered {turns} dialog turns from {len(convo['sessions'])} sessions, "
        f"embedded and indexed (seq {mem.seq})")
    for question in ("Why did the staging deploy fail?", "How did they fix the migration?"):
        say(f"[bold]recall[/bold] {question!r}")
        for hit in mem.recall(question, k=2):
            found_by = "+".join(sorted(hit.signals))
            where = escape(f"[turn {hit.node.attrs.get('dia_id')}]")
            say(f"  {hit.score:.2f} {where} {escape(hit.text)}  [dim]({found_by})[/dim]")

    # Facts and entities, as an extraction step would write them.
    maya = mem.remember("Maya lives in Berlin", kind="entity", name="Maya", domain="people",
                        attrs={"city": "Berlin"}, session="s1", agent="extractor")
    acme = mem.remember("Acme Robotics builds fleet schedulers", kind="entity",
                        name="Acme Robotics", domain="companies", session="s1", agent="extractor")
    v2 = mem.remember("Fleet scheduler v2 launch", kind="entity", name="v2 launch",
                      domain="projects", attrs={"date": "May"}, session="s1", agent="extractor")
    mem.relate(maya.id, "works_at", acme.id, session="s1")
    mem.relate(maya.id, "leads", v2.id, session="s1")
    mem.relate(acme.id, "ships", v2.id, session="s1")
    march = mem.seq
    mem.update(maya.id, text="Maya lives in Lisbon", attrs={"city": "Lisbon"}, session="s3",
               agent="extractor", source="sample_conversation.json#s3:1")
    mem.update(v2.id, attrs={"date": "June 10"}, session="s3", agent="extractor")

    table = Table("domain", "memories")
    for domain, n in sorted(mem.domains().items()):
        table.add_row(domain, str(n))
    say(table)
    if not quiet:
        say("[bold]cross-domain bridges[/bold]")
        for b in mem.bridges():
            say(f"  {mem.get(b.src).name} ({b.src_domain}) -{b.rel}-> "
                f"{mem.get(b.dst).name} ({b.dst_domain})")
        say("[bold]Maya's neighbours[/bold]: "
            + ", ".join(f"{n.edge.rel} {n.node.name}" for n in mem.neighbors(maya.id)))

    say("[bold]time travel[/bold]")
    say(f"  now:            {mem.get(maya.id).text}; v2 launch {mem.get(v2.id).attrs['date']}")
    past = mem.as_of(march)
    say(f"  as of seq {march}: {past.get(maya.id).text}; v2 launch {past.get(v2.id).attrs['date']}")

    prov = mem.provenance(maya.id, "attrs.city")
    say("[bold]provenance[/bold] of Maya's city = "
        f"{prov.value!r}: event {prov.seq} at {prov.recorded_at:%Y-%m-%d %H:%M:%S}, "
        f"agent {prov.agent}, session {prov.session}, source {prov.source}")

    say("[bold]compressed index[/bold] (returned with recall: how the store's topics connect)")
    console.out(mem.index(max_tokens=200 if quiet else 600), highlight=False)

    secret_text = "Sam's door code is 4711"
    secret = mem.remember(secret_text, domain="people", session="s3")
    mem.forget(secret.id, reason="user asked", agent="sam")
    redacted = mem.compact()
    # look for the sentence, not the bare digits: "4711" also turns up in hex ids and times
    marker = secret_text.encode()
    leaked = any(marker in Path(f).read_bytes() for f in mem.files() if os.path.isfile(f))
    say(f"[bold]forget[/bold]: redacted {redacted} event(s); marker on disk after compaction: "
        f"{'FOUND (bug!)' if leaked else 'gone'}; history keeps "
        f"{[e.type for e in mem.history(secret.id)]}")
    if leaked:
        raise SystemExit("demo: forgotten content still on disk")

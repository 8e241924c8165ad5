"""Bodies of the ``engram`` commands that move or verify whole stores: ``ingest``,
``export``, ``import``, ``check``, plus ``index`` and ``as-of``. The typer
functions in :mod:`engramdb.adapters.cli` parse options and call these; each
calls one facade method and renders what it returns."""

from __future__ import annotations

import json
from typing import Any

import msgspec
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..errors import CorruptStore
from ..memory import Memory
from ..progress import Step
from ..store import CheckReport
from .cli_progress import bars
from .ingest import ingest_file
from .wire import plain

__all__ = ["hits_json", "hits_table", "payload_summary", "report_check", "run_check",
           "run_ingest", "show_as_of", "show_index"]


def hits_json(hits: list[Any]) -> list[dict[str, Any]]:
    """Recall hits as ``--json`` shows them (provenance times ISO 8601 with offset)."""
    return [
        {"id": h.id, "score": h.score, "text": h.text, "signals": plain(h.signals),
         "provenance": plain(h.provenance)}
        for h in hits
    ]


def _print_json(console: Console, obj: Any) -> None:
    console.print_json(json.dumps(plain(obj)))


def show_index(mem: Memory, console: Console, *, max_tokens: int | None, prose: bool,
               as_of: int | str | None, as_json: bool) -> None:
    text = mem.index(max_tokens=max_tokens, prose=prose, as_of=as_of)
    if as_json:
        seq = mem.as_of(as_of).seq if as_of is not None else mem.seq
        _print_json(console, {"seq": seq, "index": text})
    else:
        console.out(text, highlight=False)


def show_as_of(mem: Memory, console: Console, when: int | str, query: str | None, *, k: int,
               as_json: bool) -> None:
    view = mem.as_of(when)
    domains = view.domains()
    hits = mem.recall(query, k=k, as_of=view.seq) if query else []
    if as_json:
        _print_json(console, {"when": when, "seq": view.seq, "head": mem.seq,
                              "domains": domains, "hits": hits_json(hits)})
        return
    console.print(f"as of {escape(str(when))}: seq {view.seq} (now {mem.seq})")
    table = Table("domain", "memories")
    for name, count in sorted(domains.items()):
        table.add_row(escape(name), str(count))
    console.print(table)
    if query:
        console.print(hits_table(hits))


def hits_table(hits: list[Any]) -> Table:
    """Recall hits as a table whose ids are never cut (they are for copying): the
    text column gives way instead."""
    table = Table("score")
    table.add_column("id", no_wrap=True, min_width=max((len(h.id) for h in hits), default=2),
                     overflow="fold")
    table.add_column("text", ratio=1, no_wrap=True, overflow="ellipsis")
    table.add_column("signals", no_wrap=True)
    for h in hits:
        table.add_row(f"{h.score:.3f}", h.id, escape(h.text[:200]), "+".join(sorted(h.signals)))
    return table


def payload_summary(event: Any) -> str:
    """An event's payload in one short line; a stored vector as its model and size."""
    payload = plain(event.payload)
    if isinstance(payload, dict) and isinstance(payload.get("vector"), str):
        return f"vector: {payload.get('model')}, {payload.get('dim')} dims"
    return json.dumps(payload)[:80]


def run_ingest(mem: Memory, console: Console, path: str, *, fmt: str | None,
               domain: str | None, as_json: bool, quiet: bool) -> None:
    """Ingest with a progress bar on stderr (see .cli_progress), then a summary."""
    with bars(quiet=quiet) as drawer:

        def progress(done: int, total: int, memories: int) -> None:
            drawer.set_field("ingest", memories=memories)
            drawer(Step("ingest", done, total))

        try:
            summary = ingest_file(mem, path, fmt=fmt, domain=domain, progress=progress)
        finally:
            drawer.finish("ingest")
    row = {"file": path, "format": summary.format, "memories": summary.memories,
           "sessions": summary.sessions, "commits": summary.commits,
           "seconds": round(summary.seconds, 3), "rate_per_s": round(summary.rate, 1),
           "seqs": [summary.first_seq, summary.last_seq]}
    if as_json:
        _print_json(console, row)
        return
    table = Table("format", "memories", "sessions", "commits", "seconds", "memories/s", "seqs",
                  title=f"ingested {escape(path)}")
    table.add_row(summary.format, str(summary.memories), str(summary.sessions),
                  str(summary.commits), f"{summary.seconds:.2f}", f"{summary.rate:.1f}",
                  f"{summary.first_seq}..{summary.last_seq}")
    console.print(table)


def run_check(mem: Memory, console: Console, *, as_json: bool) -> None:
    """Print the report; raise :class:`CorruptStore` (exit 8) if anything disagrees."""
    report_check(mem.check(), console, as_json=as_json)


def report_check(report: CheckReport, console: Console, *, as_json: bool) -> None:
    """Print a check report; raise :class:`CorruptStore` (exit 8) unless it is ok."""
    if as_json:
        _print_json(console, {"ok": report.ok, "seq": report.seq,
                              "findings": msgspec.to_builtins(list(report.findings))})
    else:
        table = Table("check", "subject", "ok", "detail", title=f"check at seq {report.seq}")
        for f in report.findings:
            mark = "[green]ok[/green]" if f.ok else "[red]FAIL[/red]"
            table.add_row(f.check, escape(f.subject), mark, escape(f.detail))
        console.print(table)
    if not report.ok:
        raise CorruptStore(f"{len(report.problems)} check(s) failed; rebuild or restore the"
                           " store (snapshots are rebuilt from the log when deleted)")

"""``engram``: the command line. Each command calls one facade method.

Errors are mapped to exit codes in :func:`main` via :func:`engramdb.errors.error_info`,
and nowhere else. The store is ``--store`` (or ``ENGRAM_STORE``), default
``memory.engram`` in the current directory.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import msgspec
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..errors import EngramError, error_info
from ..memory import Memory

app = typer.Typer(
    name="engram",
    help="engramdb: an event-sourced memory database for AI agents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
bench_app = typer.Typer(help="Benchmarks: each prints a table and writes JSON.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
console = Console(highlight=False)

StoreOpt = Annotated[
    str, typer.Option("--store", "-s", envvar="ENGRAM_STORE", help="Path of the store file.")
]
NamespaceOpt = Annotated[
    str, typer.Option("--namespace", "-n", envvar="ENGRAM_NAMESPACE", help="Namespace to use.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@contextmanager
def _open(store: str, namespace: str, *, read_only: bool = False) -> Iterator[Memory]:
    mem = Memory.open(store, namespace=namespace, read_only=read_only)
    try:
        yield mem
    finally:
        mem.close()


def _dump(obj: Any) -> str:
    return json.dumps(msgspec.to_builtins(obj), indent=2, default=str)


@app.command()
def init(store: StoreOpt = "memory.engram") -> None:
    """Create an empty store (opening a missing store also creates it)."""
    with _open(store, "default") as mem:
        console.print(f"store ready at {store} (seq {mem.seq})")


@app.command()
def remember(
    text: str,
    domain: Annotated[str | None, typer.Option(help="Domain (topic area).")] = None,
    kind: Annotated[str, typer.Option(help="Kind of memory.")] = "memory",
    name: Annotated[str | None, typer.Option(help="Name, for entities.")] = None,
    source: Annotated[str | None, typer.Option(help="Where it came from.")] = None,
    agent: Annotated[str | None, typer.Option(help="Who is writing.")] = None,
    store: StoreOpt = "memory.engram",
    namespace: NamespaceOpt = "default",
) -> None:
    """Store a memory and print its id."""
    with _open(store, namespace) as mem:
        node = mem.remember(text, domain=domain, kind=kind, name=name, source=source, agent=agent)
        console.print(node.id)


@app.command()
def get(
    memory_id: str,
    as_of: Annotated[str | None, typer.Option("--as-of", help="A seq or ISO time.")] = None,
    store: StoreOpt = "memory.engram",
    namespace: NamespaceOpt = "default",
) -> None:
    """Print one memory as JSON (optionally as it was at --as-of)."""
    with _open(store, namespace, read_only=True) as mem:
        view = mem.as_of(_when(as_of)) if as_of else mem
        console.print_json(_dump(view.get(memory_id)))


@app.command()
def recall(
    query: str,
    k: Annotated[int, typer.Option("--k", "-k", help="How many memories.")] = 10,
    as_of: Annotated[str | None, typer.Option("--as-of", help="A seq or ISO time.")] = None,
    domain: Annotated[list[str] | None, typer.Option(help="Only these domains.")] = None,
    store: StoreOpt = "memory.engram",
    namespace: NamespaceOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Hybrid recall (vectors + BM25 + graph + recency) with the signals behind each hit."""
    with _open(store, namespace, read_only=True) as mem:
        hits = mem.recall(query, k=k, as_of=_when(as_of) if as_of else None, domains=domain)
        if as_json:
            console.print_json(_dump([{"id": h.id, "score": h.score, "text": h.text,
                                       "signals": h.signals, "provenance": h.provenance}
                                      for h in hits]))
            return
        table = Table("score", "id", "text", "signals")
        for h in hits:
            table.add_row(f"{h.score:.3f}", h.id, escape(h.text[:90]), "+".join(sorted(h.signals)))
        console.print(table)


@app.command()
def history(
    memory_id: str, store: StoreOpt = "memory.engram", namespace: NamespaceOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Print a memory's event trail."""
    with _open(store, namespace, read_only=True) as mem:
        events = mem.history(memory_id)
        if as_json:
            console.print_json(_dump(events))
            return
        table = Table("seq", "recorded", "type", "agent", "payload")
        for e in events:
            table.add_row(str(e.seq), e.recorded.isoformat(timespec="seconds"), e.type,
                          e.meta.agent or "", json.dumps(msgspec.to_builtins(e.payload))[:80])
        console.print(table)


@app.command()
def relate(
    src: str, rel: str, dst: str, store: StoreOpt = "memory.engram",
    namespace: NamespaceOpt = "default",
) -> None:
    """Add the typed edge SRC -REL-> DST."""
    with _open(store, namespace) as mem:
        mem.relate(src, rel, dst)
        console.print(f"{src} -{rel}-> {dst}")


@app.command()
def forget(
    memory_id: str, reason: Annotated[str | None, typer.Option(help="Why.")] = None,
    store: StoreOpt = "memory.engram", namespace: NamespaceOpt = "default",
) -> None:
    """Tombstone a memory (run `compact` to erase it from disk)."""
    with _open(store, namespace) as mem:
        event = mem.forget(memory_id, reason=reason)
        console.print(f"forgotten at seq {event.seq}")


@app.command()
def compact(store: StoreOpt = "memory.engram") -> None:
    """Erase forgotten content from every file of the store."""
    with _open(store, "default") as mem:
        console.print(f"redacted {mem.compact()} events")


@app.command()
def stats(store: StoreOpt = "memory.engram", namespace: NamespaceOpt = "default") -> None:
    """Print counts for the store and namespace."""
    with _open(store, namespace, read_only=True) as mem:
        console.print_json(json.dumps(mem.stats()))


@app.command()
def demo(
    store: Annotated[str | None, typer.Option(help="Keep the demo store at this path.")] = None,
    quiet: Annotated[bool, typer.Option(help="Less output.")] = False,
) -> None:
    """Ingest a bundled conversation and show recall, time travel and provenance."""
    from .demo import run_demo

    run_demo(console, store=store, quiet=quiet)


@bench_app.command("core")
def bench_core(
    events: Annotated[int, typer.Option(help="Events in the big store.")] = 1_000_000,
    out: Annotated[str, typer.Option(help="JSON output path.")] = "bench-results/core.json",
) -> None:
    """Append, replay, cold open, get/as-of latency, reads during writes."""
    from ..bench.core import run

    report = run(events=events, out=out, progress=lambda m: console.print(f"[dim]… {m}[/dim]"))
    typer.echo(report.table())
    console.print(f"wrote {out}")


@bench_app.command("locomo")
def bench_locomo(
    path: Annotated[str, typer.Argument(help="LoCoMo JSON file.")] = "../shared/data/locomo10.json",
    out: Annotated[str, typer.Option(help="JSON output path.")] = "bench-results/locomo.json",
    limit: Annotated[int | None, typer.Option(help="Only the first N conversations.")] = None,
) -> None:
    """LoCoMo evidence recall@k per category: hybrid vs BM25-only vs dense-only."""
    from rich.progress import Progress

    from ..bench.locomo import run

    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("LoCoMo questions", total=None)
        report = run(path=path, out=out, limit=limit,
                     progress=lambda done, total: bar.update(task, completed=done, total=total))
    typer.echo(report.table())
    typer.echo(f"wrote {out}")


def _when(value: str) -> int | str:
    return int(value) if value.isdigit() else value


def main() -> None:
    """Entry point: run the app, mapping engramdb errors to stable exit codes."""
    try:
        app(standalone_mode=False)
    except EngramError as exc:
        info = error_info(exc)
        Console(stderr=True).print(
            f"[red]error[/red] {escape('[' + info['code'] + ']')} {escape(info['message'])}"
        )
        sys.exit(info["exit_code"])
    except typer.Abort:
        sys.exit(130)
    except Exception as exc:  # click usage errors carry their own exit code
        code = getattr(exc, "exit_code", None)
        if code is None:
            raise
        show = getattr(exc, "show", None)
        if show:
            show()
        sys.exit(code)


if __name__ == "__main__":
    main()

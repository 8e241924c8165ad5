"""``engram``: the command line. Each command calls one facade method.

Errors are mapped to exit codes in :func:`main` via :func:`engramdb.errors.error_info`,
and nowhere else. The store is ``--store`` (or ``ENGRAM_STORE``), default
``memory.engram`` in the current directory; ``ENGRAM_EMBEDDER`` picks the
embedder. Every command is listed in docs/cli.md, every variable in docs/config.md.
Bodies of the whole-store commands (ingest, export/import, check) live in
:mod:`engramdb.adapters.cli_io`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..errors import CorruptStore, EngramError, InvalidInput, NotFound, error_info
from ..events import iso_time
from ..extras import missing_extra
from ..memory import Memory
from .wire import event_out, node_out, plain

app = typer.Typer(
    name="engram",
    help="engramdb: an event-sourced memory database for AI agents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
bench_app = typer.Typer(
    help="Benchmarks: each prints a table and writes JSON.", no_args_is_help=True
)
app.add_typer(bench_app, name="bench")
token_app = typer.Typer(help="Bearer tokens for `engram serve`.", no_args_is_help=True)
app.add_typer(token_app, name="token")
console = Console(highlight=False)

StoreOpt = Annotated[
    str, typer.Option("--store", "-s", envvar="ENGRAM_STORE",
                      help="Path of the store file, or postgresql://user@host/db?schema=name.")
]
TokensOpt = Annotated[str | None, typer.Option(
    "--tokens", envvar="ENGRAM_TOKENS",
    help="Tokens file (default: <store>.tokens; needed for a PostgreSQL store).")]
SnapshotsOpt = Annotated[str | None, typer.Option(
    "--snapshots", envvar="ENGRAM_SNAPSHOTS",
    help="Local directory for projection snapshots (default: <store>.snapshots, or"
         " ~/.cache/engramdb/snapshots/<store id> for PostgreSQL).")]
NamespaceOpt = Annotated[
    str, typer.Option("--namespace", "-n", envvar="ENGRAM_NAMESPACE", help="Namespace to use.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
ValidFromOpt = Annotated[str | None, typer.Option(
    help="When it became true in the world: ISO 8601 (no offset: UTC) or µs.")]
ValidToOpt = Annotated[str | None, typer.Option(
    help="When it stopped being true: ISO 8601 (no offset: UTC) or µs.")]
UserOpt = Annotated[str | None, typer.Option("--user-id", help="Whom it is about or for.")]
AgentIdOpt = Annotated[str | None, typer.Option("--agent-id", help="Which agent writes it.")]
RunOpt = Annotated[str | None, typer.Option("--run-id", help="The run or session.")]
UsersOpt = Annotated[list[str] | None, typer.Option(
    "--user-id", help="Only memories of this user (repeat for any of several).")]
AgentsOpt = Annotated[list[str] | None, typer.Option(
    "--agent-id", help="Only memories written by this agent (repeatable).")]
RunsOpt = Annotated[list[str] | None, typer.Option(
    "--run-id", help="Only memories of this run/session (repeatable).")]
FilterOpt = Annotated[list[str] | None, typer.Option(
    "--filter", help='KEY=VALUE, VALUE as JSON when it parses: attrs.city=Lisbon,'
                     ' attrs.age=\'{"gte": 18}\' (repeatable; all must hold).')]
AfterOpt = Annotated[str | None, typer.Option(
    help="Only memories created at or after this time (ISO 8601 or µs).")]
BeforeOpt = Annotated[str | None, typer.Option(
    help="Only memories created before this time (ISO 8601 or µs).")]
YesOpt = Annotated[bool, typer.Option("--yes", help="Really do it (otherwise only show"
                                                      " what would be removed).")]


def _time(text: str | None) -> str | int | None:
    """A time option: ISO 8601, or ASCII digits (with an optional minus) as µs."""
    if text is not None and text.lstrip("-").isascii() and text.lstrip("-").isdigit():
        return int(text)
    return text


def _filters(pairs: list[str] | None) -> dict[str, Any] | None:
    """``--filter KEY=VALUE`` options as a filters mapping (VALUE parsed as JSON if it is)."""
    if not pairs:
        return None
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(f"--filter takes KEY=VALUE, got {pair[:80]!r}")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        if key in out:
            raise InvalidInput(f"--filter {key} given twice: use a list or operators")
        out[key] = value
    return out


def _many(values: list[str] | None) -> str | list[str] | None:
    return values[0] if values and len(values) == 1 else (values or None)


_DEFAULT: Any = object()


def _embedder() -> Any:
    """``ENGRAM_EMBEDDER``: ``default`` (all-MiniLM-L6-v2), ``hashing`` (no model),
    ``none``, or another model ``engram reembed`` can switch to (``e5-small-q4``)."""
    choice = os.environ.get("ENGRAM_EMBEDDER", "default")
    if choice in ("default", "none"):
        return None if choice == "none" else "default"
    return _named_embedder(choice, "ENGRAM_EMBEDDER")


def _named_embedder(name: str, what: str) -> Any:
    from ..recall.embedders import make_embedder

    try:
        return make_embedder(name)
    except InvalidInput:
        raise InvalidInput(f"{what} must be default, hashing, e5-small-q4 or none, not"
                           f" {name!r}") from None


@contextmanager
def _open(store: str, namespace: str, *, read_only: bool = False,
          embedder: Any = _DEFAULT) -> Iterator[Memory]:
    """The store, opened (and closed) with progress bars on stderr for whatever takes
    long meanwhile: replaying the log, a compaction, an export (see .cli_progress)."""
    from .cli_progress import bars

    with bars():
        mem = Memory.open(store, namespace=namespace, read_only=read_only,
                          embedder=_embedder() if embedder is _DEFAULT else embedder)
        try:
            yield mem
        finally:
            mem.close()


def _dump(obj: Any) -> str:
    """JSON as every edge shows it: times ISO 8601 with offset, no raw bytes (.wire)."""
    return json.dumps(plain(obj), indent=2)


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
    valid_from: ValidFromOpt = None,
    valid_to: ValidToOpt = None,
    user_id: UserOpt = None,
    agent_id: AgentIdOpt = None,
    run_id: RunOpt = None,
    store: StoreOpt = "memory.engram",
    namespace: NamespaceOpt = "default",
) -> None:
    """Store a memory and print its id."""
    with _open(store, namespace) as mem:
        node = mem.remember(text, domain=domain, kind=kind, name=name, source=source, agent=agent,
                            valid_from=_time(valid_from), valid_to=_time(valid_to),
                            user_id=user_id, agent_id=agent_id, run_id=run_id)
        console.print(node.id)


def _attr_pairs(pairs: list[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` options as attrs; VALUE is JSON if it parses (``3``, ``true``,
    ``["a"]``), else the text itself."""
    attrs: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(f"--attr takes KEY=VALUE, not {pair[:80]!r}")
        try:
            attrs[key] = json.loads(value)
        except ValueError:
            attrs[key] = value
    return attrs


@app.command()
def update(
    memory_id: str,
    text: Annotated[str | None, typer.Option(help="New text.")] = None,
    name: Annotated[str | None, typer.Option(help="New name.")] = None,
    domain: Annotated[str | None, typer.Option(help="New domain.")] = None,
    kind: Annotated[str | None, typer.Option(help="New kind.")] = None,
    attr: Annotated[list[str] | None, typer.Option(
        "--attr", help="Set an attribute, KEY=VALUE (VALUE as JSON if it parses); repeat.")]
    = None,
    unset: Annotated[list[str] | None, typer.Option(
        "--unset", help="Remove an attribute by key; repeat.")] = None,
    clear_name: Annotated[bool, typer.Option("--clear-name", help="Remove the name.")] = False,
    clear_domain: Annotated[bool, typer.Option(
        "--clear-domain", help="Take it out of its domain.")] = False,
    valid_from: ValidFromOpt = None,
    valid_to: ValidToOpt = None,
    expected_version: Annotated[int | None, typer.Option(
        help="Only if the memory is still at this version (else exit 4, version_conflict).")]
    = None,
    source: Annotated[str | None, typer.Option(help="Where the change came from.")] = None,
    agent: Annotated[str | None, typer.Option(help="Who is writing.")] = None,
    session: Annotated[str | None, typer.Option(help="The session it belongs to.")] = None,
    store: StoreOpt = "memory.engram",
    namespace: NamespaceOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Change fields of a memory (only those given) and print its new version."""
    if (clear_name and name is not None) or (clear_domain and domain is not None):
        raise InvalidInput("give a new value or --clear-..., not both")
    fields: dict[str, Any] = {k: v for k, v in (("text", text), ("name", name),
                              ("domain", domain), ("kind", kind)) if v is not None}
    fields.update({k: None for k, on in (("name", clear_name), ("domain", clear_domain)) if on})
    with _open(store, namespace) as mem:
        node = mem.update(memory_id, **fields, attrs=_attr_pairs(attr) or None,
                          unset=unset or (), valid_from=_time(valid_from),
                          valid_to=_time(valid_to), expected_version=expected_version,
                          source=source, agent=agent, session=session)
        if as_json:
            console.print_json(_dump(node_out(node)))
        else:
            console.print(f"{node.id} is at version {node.version} (seq {node.seq})")


@app.command()
def get(
    memory_id: str,
    as_of: Annotated[str | None, typer.Option("--as-of", help="A seq or ISO time.")] = None,
    store: StoreOpt = "memory.engram",
    namespace: NamespaceOpt = "default",
) -> None:
    """Print one memory as JSON (optionally as it was at --as-of)."""
    with _open(store, namespace, read_only=True) as mem:
        view = mem.as_of(as_of) if as_of else mem
        console.print_json(_dump(node_out(view.get(memory_id))))


@app.command()
def recall(
    query: str,
    k: Annotated[int, typer.Option("--k", "-k", help="How many memories.")] = 10,
    as_of: Annotated[str | None, typer.Option("--as-of", help="A seq or ISO time.")] = None,
    domain: Annotated[list[str] | None, typer.Option(help="Only these domains.")] = None,
    user_id: UsersOpt = None,
    agent_id: AgentsOpt = None,
    run_id: RunsOpt = None,
    filter_: FilterOpt = None,
    created_after: AfterOpt = None,
    created_before: BeforeOpt = None,
    min_score: Annotated[float | None, typer.Option(help="Drop hits scoring below this.")]
    = None,
    store: StoreOpt = "memory.engram",
    namespace: NamespaceOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Hybrid recall (vectors + BM25 + graph + recency) with the signals behind each hit."""
    with _open(store, namespace, read_only=True) as mem:
        hits = mem.recall(query, k=k, as_of=as_of or None, domains=domain,
                          user_id=_many(user_id), agent_id=_many(agent_id), run_id=_many(run_id),
                          filters=_filters(filter_), created_after=_time(created_after),
                          created_before=_time(created_before), min_score=min_score)
        if as_json:
            from .cli_io import hits_json

            console.print_json(_dump(hits_json(hits)))
            return
        from .cli_io import hits_table

        console.print(hits_table(hits))


@app.command()
def history(
    memory_id: str, store: StoreOpt = "memory.engram", namespace: NamespaceOpt = "default",
    as_json: JsonOpt = False,
    as_of: Annotated[str | None, typer.Option("--as-of", help="A seq or ISO time.")] = None,
) -> None:
    """Print a memory's event trail (optionally only up to --as-of)."""
    with _open(store, namespace, read_only=True) as mem:
        events = (mem.as_of(as_of) if as_of else mem).history(memory_id)
        if as_json:
            console.print_json(_dump([event_out(e) for e in events]))
            return
        from .cli_io import payload_summary

        table = Table("seq", "recorded", "type", "agent", "payload")
        for e in events:
            table.add_row(str(e.seq), e.recorded.isoformat(timespec="seconds"), e.type,
                          escape(e.meta.agent or ""), escape(payload_summary(e)))
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


@app.command("list")
def list_command(
    domain: Annotated[list[str] | None, typer.Option(help="Only these domains.")] = None,
    user_id: UsersOpt = None,
    agent_id: AgentsOpt = None,
    run_id: RunsOpt = None,
    filter_: FilterOpt = None,
    created_after: AfterOpt = None,
    created_before: BeforeOpt = None,
    current: Annotated[bool, typer.Option(help="Leave out superseded memories.")] = False,
    oldest: Annotated[bool, typer.Option("--oldest", help="Oldest first.")] = False,
    limit: Annotated[int, typer.Option(help="Page size (1-1000).")] = 50,
    cursor: Annotated[str | None, typer.Option(help="The next-page cursor a page printed.")]
    = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="A seq or ISO time.")] = None,
    store: StoreOpt = "memory.engram",
    namespace: NamespaceOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """List memories (newest first), filtered, one page at a time."""
    with _open(store, namespace, read_only=True) as mem:
        page = mem.list(domains=domain, user_id=_many(user_id), agent_id=_many(agent_id),
                        run_id=_many(run_id), filters=_filters(filter_),
                        created_after=_time(created_after), created_before=_time(created_before),
                        current=current, order="oldest" if oldest else "newest", limit=limit,
                        cursor=cursor, as_of=as_of)
        if as_json:
            console.print_json(_dump({"items": [node_out(n) for n in page], "seq": page.seq,
                                      "next_cursor": page.cursor}))
            return
        table = Table("id", "created", "user", "domain", "text")
        for n in page:
            table.add_row(n.id, iso_time(n.created_at)[:19], n.user_id or "", n.domain or "",
                          escape(n.text[:70]))
        console.print(table)
        if page.cursor:
            console.print(f"next page: --cursor {page.cursor}")


def _confirmed(mem: Memory, ids: list[str], yes: bool, what: str) -> None:
    """Without --yes: print what would go and stop (exit 1, nothing written)."""
    if yes:
        console.print(f"forgot {len(ids)} memories {what} (run `compact` to erase them"
                      " from disk)")
        return
    console.print(f"would forget {len(ids)} memories {what}:")
    for node_id in ids[:20]:
        console.print(f"  {node_id}  {escape(mem.get(node_id).text[:70])}")
    if len(ids) > 20:
        console.print(f"  ... and {len(ids) - 20} more")
    console.print("nothing changed: pass --yes to forget them")
    raise SystemExit(1)  # not typer.Exit: main() runs the app outside standalone mode


@app.command("forget-where")
def forget_where(
    user_id: UsersOpt = None,
    agent_id: AgentsOpt = None,
    run_id: RunsOpt = None,
    filter_: FilterOpt = None,
    domain: Annotated[list[str] | None, typer.Option(help="Only these domains.")] = None,
    created_after: AfterOpt = None,
    created_before: BeforeOpt = None,
    reason: Annotated[str | None, typer.Option(help="Why.")] = None,
    yes: YesOpt = False,
    store: StoreOpt = "memory.engram",
    namespace: NamespaceOpt = "default",
) -> None:
    """Forget every memory matching a filter (a user, run, agent, attribute...)."""
    with _open(store, namespace) as mem:
        ids = mem.forget_where(
            user_id=_many(user_id), agent_id=_many(agent_id), run_id=_many(run_id),
            filters=_filters(filter_), domains=domain, created_after=_time(created_after),
            created_before=_time(created_before), reason=reason, dry_run=not yes)
        _confirmed(mem, ids, yes, "matching")


@app.command("drop-namespace")
def drop_namespace(
    name: Annotated[str, typer.Argument(help="The namespace to drop.")],
    reason: Annotated[str | None, typer.Option(help="Why.")] = None,
    yes: YesOpt = False,
    store: StoreOpt = "memory.engram",
) -> None:
    """Forget every memory of a namespace and discard its contexts."""
    with _open(store, name) as mem:
        ids = mem.drop_namespace(name, reason=reason, dry_run=not yes)
        _confirmed(mem, ids, yes, f"of namespace {name!r}")


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
def index(
    max_tokens: Annotated[int | None, typer.Option(help="Token budget.")] = None,
    prose: Annotated[bool, typer.Option(help="The LLM-enriched prose, if current.")] = False,
    as_of: Annotated[str | None, typer.Option("--as-of", help="A seq or ISO time.")] = None,
    store: StoreOpt = "memory.engram",
    namespace: NamespaceOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Print the compressed index: a markdown table of contents of the store, by domain."""
    from .cli_io import show_index

    with _open(store, namespace, read_only=True) as mem:
        show_index(mem, console, max_tokens=max_tokens, prose=prose,
                   as_of=as_of or None, as_json=as_json)


@app.command("as-of")
def as_of_command(
    when: Annotated[str, typer.Argument(help="A seq or an ISO time, e.g. 2026-03-01.")],
    query: Annotated[str | None, typer.Argument(help="Recall this, as of WHEN.")] = None,
    k: Annotated[int, typer.Option("--k", "-k", help="How many memories.")] = 10,
    store: StoreOpt = "memory.engram",
    namespace: NamespaceOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """The store as it was at WHEN: its seq, domains, and recall of QUERY then."""
    from .cli_io import show_as_of

    with _open(store, namespace, read_only=True) as mem:
        show_as_of(mem, console, when, query, k=k, as_json=as_json)


@app.command()
def ingest(
    path: Annotated[str, typer.Argument(help="A .jsonl, LoCoMo or LongMemEval file.")],
    fmt: Annotated[str | None, typer.Option(
        "--format", help="jsonl, locomo or longmemeval (default: detected).")] = None,
    domain: Annotated[str | None, typer.Option(help="Domain for what names none.")] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
    store: StoreOpt = "memory.engram",
    namespace: NamespaceOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Load memories or conversations from a file, with a progress bar and a summary."""
    from .cli_io import run_ingest

    with _open(store, namespace) as mem:
        run_ingest(mem, console, path, fmt=fmt, domain=domain, as_json=as_json, quiet=quiet)


@app.command()
def export(
    path: Annotated[str, typer.Argument(help="Parquet file to write.")],
    include_forgotten: Annotated[bool, typer.Option(
        help="Also write forgotten content not yet compacted (default: redacted).")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Replace an earlier export at PATH (never a store).")] = False,
    allow_damaged: Annotated[bool, typer.Option(
        help="Export even if the hash chain is broken (default: refuse, exit 8).")] = False,
    store: StoreOpt = "memory.engram",
) -> None:
    """Write the whole event log (every namespace) to Parquet, losslessly
    (forgotten content is written redacted, as `compact` would leave it).
    Never overwrites a store; an existing export only with --force."""
    with _open(store, "default", read_only=True) as mem:
        count = mem.export_events(path, include_forgotten=include_forgotten, overwrite=force,
                                  allow_damaged=allow_damaged)
        console.print(f"exported {count} events to {escape(path)}")


@app.command("import")
def import_command(
    path: Annotated[str, typer.Argument(help="Parquet file written by `engram export`.")],
    store: StoreOpt = "memory.engram",
) -> None:
    """Load an export into an EMPTY store: the same events, ids, seqs and times."""
    with _open(store, "default") as mem:
        console.print(f"imported {mem.import_events(path)} events into {escape(store)}")


@app.command()
def reembed(
    to: Annotated[str, typer.Option(
        "--to", help="The new model: default, hashing or e5-small-q4 (its extra installed).")],
    batch: Annotated[int, typer.Option(help="Texts per embed call and commit.")] = 256,
    store: StoreOpt = "memory.engram",
    as_json: JsonOpt = False,
) -> None:
    """Switch the whole store to another embedding model, by replay (recall keeps
    answering with the old one until the switch). Afterwards open it with
    ENGRAM_EMBEDDER set to the new model."""
    from .cli_progress import bars

    target = "default" if to == "default" else _named_embedder(to, "--to")
    if target == "default":
        from ..recall.embed import default_embedder

        target = default_embedder()
    with _open(store, "default") as mem, bars() as drawer:
        report = mem.reembed(target, batch=batch, progress=drawer.callback("reembed"))
        drawer.finish("reembed")
    if as_json:
        console.print_json(_dump(report))
    else:
        console.print(f"{report.model} is active from seq {report.activated_seq}:"
                      f" {report.embedded} embedded, {report.reused} reused,"
                      f" {report.skipped} empty ({report.seconds:.1f}s); open the store with"
                      f" ENGRAM_EMBEDDER={escape(to)} from now on")


@app.command()
def check(store: StoreOpt = "memory.engram", as_json: JsonOpt = False) -> None:
    """Verify the store: log integrity, projections and snapshots against a full replay."""
    from .cli_io import report_check, run_check
    from .cli_progress import bars

    with bars():
        try:
            mem = Memory.open(store, read_only=True, embedder=_embedder())
        except CorruptStore as exc:  # too damaged to open: check the log alone
            report = Memory.check_file(store, opening=exc.message)
            report_check(report, console, as_json=as_json)
            return
        with mem:
            run_check(mem, console, as_json=as_json)


@app.command("mcp")
def mcp_server(
    store: StoreOpt = "memory.engram",
    namespace: NamespaceOpt = "default",
    grant: Annotated[
        list[str] | None,
        typer.Option("--grant", help="Also serve this namespace (repeat for more)."),
    ] = None,
    transport: Annotated[
        str, typer.Option(help="stdio (for a local MCP client) or http (streamable HTTP).")
    ] = "stdio",
    host: Annotated[str, typer.Option(help="HTTP: address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP: port to listen on.")] = 8765,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="Serve reads beside another writer process.")
    ] = False,
    no_auth: Annotated[bool, typer.Option(
        "--no-auth", help="HTTP: no bearer token needed (loopback addresses only).")] = False,
    allow_remote: Annotated[bool, typer.Option(
        "--allow-remote", help="HTTP: allow a non-loopback --host (tokens still needed).")] = False,
    record_reads: Annotated[bool, typer.Option(
        "--record-reads/--no-record-reads", help="Log the agent's reads for salience.")] = True,
    tokens_file: TokensOpt = None,
) -> None:
    """Serve the store to MCP clients (Claude Desktop, Claude Code, Cursor ...).

    stdio writes nothing but JSON-RPC to stdout; logs go to stderr. HTTP needs a
    bearer token (`engram token create`) unless --no-auth on a loopback address.
    """
    from .auth import TokenStore
    from .mcp import check_http_config, run

    if transport not in ("stdio", "http"):
        raise typer.BadParameter("use 'stdio' or 'http'", param_hint="--transport")
    tokens = None
    if transport == "http":
        path = None if no_auth else _tokens_path(store, tokens_file, allow_memory=True)
        tokens = None if no_auth or path is None else TokenStore(path)
        if tokens is None and not no_auth:
            raise typer.BadParameter("an in-memory store has no tokens: pass --no-auth",
                                     param_hint="--store")
        for warning in check_http_config(host=host, tokens=tokens, allow_remote=allow_remote):
            Console(stderr=True).print(f"[bold red]WARNING[/bold red] {escape(warning)}")
    stopped = run(store, transport="stdio" if transport == "stdio" else "streamable-http",
                  host=host, port=port, namespace=namespace, grants=grant or (),
                  read_only=read_only, embedder=_embedder(), record_reads=record_reads,
                  tokens=tokens)
    if stopped is not None and transport == "stdio":
        # the store is closed; the thread blocked reading stdin would keep the
        # interpreter from exiting, so leave without waiting for it
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


@app.command()
def demo(
    store: Annotated[str | None, typer.Option(help="Keep the demo store at this path.")] = None,
    quiet: Annotated[bool, typer.Option(help="Less output.")] = False,
) -> None:
    """Ingest a bundled conversation and show recall, time travel and provenance."""
    from .demo import run_demo

    run_demo(console, store=store, quiet=quiet)


def _dataset(path: str, name: str, where: str) -> None:
    """A benchmark's input file must be there: a clear error (exit 3), not a traceback."""
    if not os.path.isfile(path):
        raise NotFound(f"no {name} dataset at {path}: download {where} and pass its path",
                       path=path)


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


@bench_app.command("vectors")
def bench_vectors(
    n: Annotated[int, typer.Option(help="Vectors in the index.")] = 20_000,
    dim: Annotated[int, typer.Option(help="Vector dimension.")] = 384,
    queries: Annotated[int, typer.Option(help="Held-out queries per measurement.")] = 200,
    target: Annotated[float, typer.Option(help="Recall@10 the ef tuner holds.")] = 0.95,
    out: Annotated[str, typer.Option(help="JSON output path.")] = "bench-results/vectors.json",
) -> None:
    """Adaptive vector index: auto vs fixed ef, partitioned vs global filters, f32/f16/i8."""
    from ..bench.cognition_vectors import run as run_vectors

    report = run_vectors(n=n, dim=dim, queries=queries, target=target, out=out,
                         progress=lambda m: console.print(f"[dim]… {m}[/dim]"))
    typer.echo(report.table())
    console.print(f"wrote {out}")


@bench_app.command("cognition")
def bench_cognition(
    memories: Annotated[
        int, typer.Option(help="Filler memories consolidation archives.")
    ] = 100_000,
    path: Annotated[str, typer.Option(help="LoCoMo JSON file.")] = "../shared/data/locomo10.json",
    questions: Annotated[int, typer.Option(help="LoCoMo questions asked per tier mode.")] = 400,
    quick: Annotated[bool, typer.Option(help="A small generated input, hashing embedder.")] = False,
    out: Annotated[str, typer.Option(help="JSON output path.")] = "bench-results/cognition.json",
) -> None:
    """Prefetch hit rate vs none, tiers on vs off (R@10, latency), ef auto vs fixed, footprint."""
    from ..bench.cognition import run as run_cognition

    if not quick:
        _dataset(path, "LoCoMo", "locomo10.json from https://github.com/snap-research/locomo"
                 " (data/locomo10.json), or pass --quick")
    report = run_cognition(memories=memories, path=path, questions=questions, quick=quick,
                           out=out, progress=lambda m: console.print(f"[dim]… {m}[/dim]"))
    typer.echo(report.table())
    console.print(f"wrote {out}")


@bench_app.command("locomo")
def bench_locomo(
    path: Annotated[str, typer.Argument(help="LoCoMo JSON file.")] = "../shared/data/locomo10.json",
    out: Annotated[str, typer.Option(help="JSON output path.")] = "bench-results/locomo.json",
    limit: Annotated[int | None, typer.Option(help="Only the first N conversations.")] = None,
    cache: Annotated[str, typer.Option(
        help="Directory for cached turn and query vectors ('' for none).")] = "bench-results/cache",
    passes: Annotated[int, typer.Option(help="Coordinate-ascent passes per fold.")] = 3,
    embedder: Annotated[str, typer.Option(
        help="default, or a name `engram bench embedders` lists.")] = "default",
) -> None:
    """Held-out LoCoMo evidence recall@k (2 folds): fitted hybrid vs BM25-only vs dense-only."""
    from ..bench.locomo import run

    _dataset(path, "LoCoMo", "locomo10.json from https://github.com/snap-research/locomo"
             " (data/locomo10.json)")
    from ..recall.embedders import make_embedder

    def say(message: str) -> None:
        console.print(f"[dim]… {message}[/dim]")

    report = run(path=path, out=out, limit=limit, cache=cache or None, passes=passes,
                 embedder=make_embedder(embedder), progress=say)
    typer.echo(report.table())
    typer.echo(f"wrote {out}")


@bench_app.command("embedders")
def bench_embedders(
    path: Annotated[str, typer.Argument(help="LoCoMo JSON file.")] = "../shared/data/locomo10.json",
    out: Annotated[str, typer.Option(help="JSON output path.")] = "bench-results/embedders.json",
    name: Annotated[list[str] | None, typer.Option(
        "--name", help="Only this candidate (repeat for several).")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N conversations.")] = None,
    cache: Annotated[str, typer.Option(
        help="Directory for cached vectors ('' for none).")] = "bench-results/cache",
) -> None:
    """Each candidate embedder's LoCoMo R@10, texts/s and package size in one table."""
    from ..bench.embedders import run

    report = run(path=path, out=out, names=name or None, limit=limit, cache=cache or None,
                 progress=lambda m: console.print(f"[dim]… {m}[/dim]"))
    typer.echo(report.table())
    typer.echo(f"wrote {out}")


@bench_app.command("longmemeval")
def bench_longmemeval(
    path: Annotated[str, typer.Argument(help="LongMemEval JSON file (e.g. longmemeval_s.json).")],
    granularity: Annotated[str, typer.Option(help="'session' or 'turn' documents.")] = "session",
    k: Annotated[list[int] | None, typer.Option(
        "--k", help="Cut-off k (repeat for several; default 1 3 5 10 30 50).")] = None,
    out: Annotated[str, typer.Option(help="JSON output path.")] = "bench-results/longmemeval.json",
    limit: Annotated[int | None, typer.Option(help="Only the first N questions.")] = None,
) -> None:
    """LongMemEval's official retrieval metric (recall_any/all@k, ndcg_any@k) per type."""
    from rich.progress import Progress

    _dataset(path, "LongMemEval", "longmemeval_s.json from"
             " https://huggingface.co/datasets/xiaowu0162/longmemeval")
    from ..bench.longmemeval import KS, run

    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("LongMemEval questions", total=None)
        report = run(path=path, granularity=granularity, ks=k or KS, out=out, limit=limit,
                     progress=lambda done, total: bar.update(task, completed=done, total=total))
    typer.echo(report.table())
    typer.echo(f"wrote {out}")


@bench_app.command("recall")
def bench_recall(
    sizes: Annotated[str, typer.Option(help="Store sizes, comma-separated.")] = "10000,100000",
    queries: Annotated[int, typer.Option(help="Queries timed per measurement.")] = 200,
    chroma: Annotated[bool, typer.Option(help="Also measure chromadb, if installed.")] = True,
    cache: Annotated[str | None, typer.Option(
        help="Directory to save the corpus vectors in and reuse them from.")] = None,
    out: Annotated[str, typer.Option(help="JSON output path.")] = "bench-results/recall.json",
    png: Annotated[str | None, typer.Option(
        help="Where to draw the curve (default: the JSON path with .png; needs matplotlib).")
    ] = None,
) -> None:
    """The curve per store size: ingest/s, open time and RSS (fresh process), recall
    p50/p99 per signal, with chromadb's columns when it is installed."""
    from ..bench.recall import curve_table, run

    try:
        counts = [int(s.replace("_", "")) for s in sizes.split(",") if s.strip()]
    except ValueError:
        raise typer.BadParameter("--sizes takes integers separated by commas") from None
    report = run(sizes=counts, queries=queries, chroma=chroma, cache=cache, out=out, png=png,
                 progress=lambda m: console.print(f"[dim]… {m}[/dim]"))
    typer.echo(report.table())
    typer.echo("")
    typer.echo(curve_table(report.params["curve"]))
    typer.echo(f"wrote {out}; curve: {report.params['png']}")


@app.command()
def serve(
    store: StoreOpt = "memory.engram",
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8765,
    no_auth: Annotated[bool, typer.Option(
        "--no-auth", help="No tokens: every local process may read and write (loopback only).",
    )] = False,
    read_only: Annotated[bool, typer.Option(
        "--read-only", help="Serve reads beside another writer process.")] = False,
    embedder: Annotated[str, typer.Option(
        help="default (all-MiniLM-L6-v2), hashing (no model) or none (BM25 only).")] = "default",
    max_body: Annotated[int, typer.Option(help="Largest request body, in bytes.")] = 2 << 20,
    log_level: Annotated[str, typer.Option(help="Log level (debug, info, warning...).")]
    = "info",
    log_json: Annotated[bool, typer.Option(
        "--log-json", help="Log JSON lines to stderr (one per request, with its id).")]
    = False,
    metrics_no_auth: Annotated[bool, typer.Option(
        "--metrics-no-auth", help="Serve /metrics without a token (loopback only).")]
    = False,
    ssl_certfile: Annotated[str | None, typer.Option(help="TLS certificate (PEM).")] = None,
    ssl_keyfile: Annotated[str | None, typer.Option(help="TLS private key (PEM).")] = None,
    consolidate_every: Annotated[float | None, typer.Option(
        help="Consolidate memory tiers (every namespace) every SECONDS.")] = None,
    record_reads: Annotated[bool, typer.Option(
        "--record-reads/--no-record-reads",
        help="Log agents' reads (get, recall hits) for salience, batched.")] = True,
    namespaces: Annotated[str | None, typer.Option(
        help="Serve only these namespaces (comma-separated); refuse the others.")] = None,
    shard: Annotated[str | None, typer.Option(
        help="Serve only the namespaces of hash shard K/N (e.g. 1/4); refuse the others.")] = None,
    tokens_file: TokensOpt = None,
    snapshots: SnapshotsOpt = None,
) -> None:
    """Serve the store over HTTP/JSON (OpenAPI at /docs). Needs a token unless --no-auth."""
    from .auth import TokenStore
    from .http import check_serve_config
    from .http import serve as run_server

    tokens = None if no_auth else TokenStore(_tokens_path(store, tokens_file))
    for warning in check_serve_config(host=host, tokens=tokens, tls=ssl_certfile is not None,
                                      metrics_no_auth=metrics_no_auth):
        Console(stderr=True).print(f"[bold red]WARNING[/bold red] {escape(warning)}")
    choice = {"default": "default", "none": None}.get(embedder, embedder)
    if choice == "hashing":
        from ..recall.embed import HashingEmbedder

        choice = HashingEmbedder()
    elif choice not in ("default", None):
        raise typer.BadParameter("use default, hashing or none", param_hint="--embedder")
    if consolidate_every is not None and (read_only or consolidate_every <= 0):
        raise typer.BadParameter("needs a positive number of seconds and a writable store",
                                 param_hint="--consolidate-every")
    from ..progress import watch
    from .cli_progress import bars
    from .http_obs import TaskRecorder

    tasks = TaskRecorder()  # /metrics reports what the open replayed
    with bars(), watch(tasks):  # a large store's replay on open, drawn on stderr
        opened = Memory.open(store, read_only=read_only, embedder=choice,
                             record_reads=record_reads, namespaces=namespaces, shard=shard,
                             snapshot_dir=snapshots)
    with opened as mem:  # closing flushes the reads
        if consolidate_every is not None:  # stopped when the store closes
            mem.start_consolidation(consolidate_every, all_namespaces=True)
        run_server(mem, tokens=tokens, host=host, port=port, max_body=max_body,
                   log_level=log_level, log_json=log_json, ssl_certfile=ssl_certfile,
                   ssl_keyfile=ssl_keyfile, metrics_no_auth=metrics_no_auth, tasks=tasks)


@app.command("ui")
def ui_command(
    store: StoreOpt = "memory.engram",
    namespace: NamespaceOpt = "default",
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0: any free one).")] = 0,
    open_browser: Annotated[bool, typer.Option(
        "--open", help="Also open the address in a web browser.")] = False,
    demo: Annotated[bool, typer.Option(
        "--demo", help="Explore a fresh copy of the `engram demo` data (namespace demo)"
        " in a temporary store instead of --store.")] = False,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
) -> None:
    """Explore a local store in the browser: serves /ui on loopback and prints its address."""
    import io
    import shutil
    import tempfile

    from .ui import run_local

    tmp = tempfile.mkdtemp(prefix="engram-ui-") if demo else None
    try:
        if tmp is not None:
            from .demo import run_demo

            store, namespace = os.path.join(tmp, "demo.engram"), "demo"
            run_demo(Console(file=io.StringIO()), store=store, quiet=True)
        from .cli_progress import bars

        with bars():
            opened = Memory.open(store, embedder=_embedder())
        with opened as mem:
            mem.configure_working()  # recall with an agent shows what prefetch expects next
            run_local(mem, namespace=namespace, port=port, log_level=log_level,
                      open_browser=open_browser,
                      announce=lambda url: typer.echo(f"engram explorer at {url}"))
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _tokens_path(store: str, tokens: str | None, *, allow_memory: bool = False) -> str | None:
    """The tokens file: ``--tokens``, else ``<store>.tokens``. A PostgreSQL store
    has no file of its own to put it beside, so it needs ``--tokens``."""
    from ..memory import is_postgres_url
    from .auth import tokens_path

    if tokens is not None:
        return tokens
    if is_postgres_url(store):
        raise typer.BadParameter("a PostgreSQL store keeps tokens in a local file: pass"
                                 " --tokens FILE (or --no-auth on loopback)", param_hint="--tokens")
    path = tokens_path(store)
    if path is None and not allow_memory:
        raise typer.BadParameter("tokens need a store file", param_hint="--store")
    return path


def _token_store(store: str, tokens: str | None = None) -> Any:
    from .auth import TokenStore

    return TokenStore(_tokens_path(store, tokens))


@token_app.command("create")
def token_create(
    namespace: Annotated[list[str] | None, typer.Option(
        "--namespace", "-n", help="A namespace it may use (repeat for more).")] = None,
    all_namespaces: Annotated[bool, typer.Option(
        "--all-namespaces", help="Every namespace, present and future.")] = False,
    scope: Annotated[str, typer.Option(help="read, or write (which includes read).")] = "read",
    expires_in: Annotated[str | None, typer.Option(
        help="Lifetime, e.g. 12h, 30d, 2w (default: until revoked).")] = None,
    label: Annotated[str | None, typer.Option(help="A note: who or what it is for.")] = None,
    store: StoreOpt = "memory.engram",
    tokens_file: TokensOpt = None,
) -> None:
    """Create a token and print it. It is shown this once; only its hash is kept."""
    from .auth import ALL_NAMESPACES, parse_duration

    if all_namespaces == bool(namespace):
        raise typer.BadParameter("give --namespace (one or more) or --all-namespaces")
    secret, grant = _token_store(store, tokens_file).create(
        namespaces=ALL_NAMESPACES if all_namespaces else namespace or [], scope=scope,
        expires_in=parse_duration(expires_in) if expires_in else None, label=label,
    )
    Console(stderr=True).print(f"token {grant.id} ({grant.scope}) created; it is shown once:")
    typer.echo(secret)


@token_app.command("list")
def token_list(store: StoreOpt = "memory.engram", as_json: JsonOpt = False,
               tokens_file: TokensOpt = None) -> None:
    """List tokens (ids, grants, expiry; never the tokens themselves)."""
    grants = _token_store(store, tokens_file).list()
    if as_json:
        console.print_json(_dump([_token_json(g) for g in grants]))
        return
    table = Table("id", "scope", "namespaces", "label", "created (UTC)", "expires (UTC)")
    for g in grants:
        names = "*" if g.namespaces == "*" else ", ".join(g.namespaces)
        created, expires = (
            "" if t is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(t))
            for t in (g.created_at, g.expires_at)
        )
        table.add_row(g.id, g.scope, escape(names), escape(g.label or ""), created, expires)
    console.print(table)


def _token_json(grant: Any) -> dict[str, Any]:
    out = grant.to_dict()  # times in seconds since the epoch
    for key in ("created_at", "expires_at"):
        if out.get(key) is not None:
            out[key] = iso_time(round(out[key] * 1_000_000))
    return out


@token_app.command("revoke")
def token_revoke(token_id: str, store: StoreOpt = "memory.engram",
                 tokens_file: TokensOpt = None) -> None:
    """Revoke a token by id; a running server stops accepting it at once."""
    grant = _token_store(store, tokens_file).revoke(token_id)
    console.print(f"revoked {grant.id}")


@bench_app.command("serve")
def bench_serve(
    seconds: Annotated[float, typer.Option(help="How long the clients run.")] = 10.0,
    clients: Annotated[int, typer.Option(help="Concurrent clients (half write, half recall).")] = 8,
    embedder: Annotated[str, typer.Option(help="Server embedder: default or hashing.")] = "default",
    out: Annotated[str, typer.Option(help="JSON output path.")] = "bench-results/serve.json",
) -> None:
    """HTTP load on loopback: requests/s, p50/p99, errors, and every acked write read back."""
    from ..bench.serve import run
    from .auth import TokenStore, tokens_path

    def make_token(store: str) -> str:
        return TokenStore(tokens_path(store)).create(
            namespaces=["bench"], scope="write", label="bench serve")[0]

    def server_argv(store: str, port: int) -> list[str]:
        return [sys.executable, "-m", "engramdb.adapters.cli", "serve", "--store", store,
                "--port", str(port), "--embedder", embedder, "--log-level", "warning"]

    report = run(seconds=seconds, clients=clients, out=out, make_token=make_token,
                 server_argv=server_argv, params={"embedder": embedder},
                 progress=lambda m: console.print(f"[dim]… {m}[/dim]"))
    typer.echo(report.table())
    typer.echo(f"wrote {out}")


@bench_app.command("cluster")
def bench_cluster(
    postgres: Annotated[str, typer.Option(
        help="PostgreSQL server URL (the bench makes its own schemas and drops them).")
    ] = "postgresql://postgres@127.0.0.1:5432/test",
    seconds: Annotated[float, typer.Option(help="How long each load part runs.")] = 4.0,
    clients: Annotated[int, typer.Option(help="HTTP client threads writing.")] = 6,
    batched_events: Annotated[int, typer.Option(
        help="Events for the batched PostgreSQL append.")] = 50_000,
    out: Annotated[str, typer.Option(help="JSON output path.")] = "bench-results/cluster.json",
) -> None:
    """Several processes over one log: writes/s through 1 vs 3 servers (PostgreSQL) and
    1 vs 3 writer processes (SQLite), follower lag p50/p99, PostgreSQL append rates."""
    from ..bench.cluster import run

    def server_argv(store: str, port: int) -> list[str]:
        return [sys.executable, "-m", "engramdb.adapters.cli", "serve", "--store", store,
                "--port", str(port), "--embedder", "hashing", "--no-auth",
                "--log-level", "warning", "--no-record-reads",
                "--snapshots", os.path.join(tempfile.gettempdir(), f"engram-bench-{port}")]

    import tempfile

    report = run(postgres=postgres, seconds=seconds, clients=clients,
                 batched_events=batched_events, out=out, server_argv=server_argv,
                 progress=lambda m: console.print(f"[dim]… {m}[/dim]"))
    typer.echo(report.table())
    typer.echo(f"wrote {out}")


def main() -> None:
    """Entry point: run the app, mapping engramdb errors to stable exit codes."""
    try:
        try:
            app(standalone_mode=False)
        except ModuleNotFoundError as exc:  # an extra that is not installed: say which
            raise missing_extra(exc) from exc
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

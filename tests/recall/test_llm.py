"""Optional LLM enrichment against fake Ollama / OpenAI-compatible servers on 127.0.0.1."""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engramdb import Conflict, InvalidInput, Memory, NotFound, ReadOnly
from engramdb.errors import LlmBadOutput, LlmError, LlmUnavailable
from engramdb.events.types import ENRICHMENT_EXTRACTED, ENRICHMENT_REVERTED, INDEX_ENRICHED
from engramdb.recall.embed import HashingEmbedder
from engramdb.recall.index import estimate_tokens
from engramdb.recall.llm import LlmBackend, OllamaBackend, OpenAIBackend, parse_json

Answer = Callable[[dict[str, Any]], str]


class FakeLlmServer:
    """A stdlib HTTP server on 127.0.0.1 answering ``/api/chat`` and ``/v1/chat/completions``."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.answer: Answer = lambda body: "ok"
        self.fail: tuple[int, str] | None = None
        self.raw: str | None = None  # a reply body sent as is
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real servers do

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({
                    "path": self.path, "body": body, "auth": self.headers.get("Authorization"),
                    "port": self.client_address[1],
                })
                status, reply = server.reply(self.path, body)
                data = reply.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def reply(self, path: str, body: dict[str, Any]) -> tuple[int, str]:
        if self.fail is not None:
            return self.fail
        if self.raw is not None:
            return 200, self.raw
        text = self.answer(body)
        if path == "/api/chat":
            return 200, json.dumps({"model": body["model"], "done": True,
                                    "message": {"role": "assistant", "content": text}})
        if path == "/v1/chat/completions":
            return 200, json.dumps({"object": "chat.completion", "model": body["model"],
                                    "choices": [{"index": 0, "message": {
                                        "role": "assistant", "content": text}}]})
        return 404, '{"error": "not found"}'


@pytest.fixture
def server() -> Iterator[FakeLlmServer]:
    fake = FakeLlmServer()
    fake.thread.start()
    try:
        yield fake
    finally:
        fake.httpd.shutdown()
        fake.httpd.server_close()
        fake.thread.join(timeout=5)


@pytest.fixture(params=["ollama", "openai"])
def llm(request: pytest.FixtureRequest, server: FakeLlmServer) -> Iterator[Any]:
    cls = OllamaBackend if request.param == "ollama" else OpenAIBackend
    with cls(server.url, "tiny-model", api_key="sk-test") as backend:
        yield backend


@pytest.fixture
def mem() -> Iterator[Memory]:
    m = Memory.open(":memory:", embedder=HashingEmbedder(dim=64))
    yield m
    m.close()


# -- backends ------------------------------------------------------------------------


def test_backends_complete_over_loopback(server: FakeLlmServer, llm: Any) -> None:
    server.answer = lambda body: f"echo {body['messages'][-1]['content']}"
    assert isinstance(llm, LlmBackend)
    assert llm.complete("hello", system="be brief", max_tokens=7) == "echo hello"
    assert llm.complete("again") == "echo again"
    first, second = server.requests
    body = first["body"]
    assert body["model"] == "tiny-model" and body["messages"] == [
        {"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}]
    assert second["body"]["messages"] == [{"role": "user", "content": "again"}]
    if llm.model_id == "ollama:tiny-model":
        assert first["path"] == "/api/chat" and body["stream"] is False
        assert body["options"]["num_predict"] == 7
    else:
        assert llm.model_id == "openai:tiny-model"
        assert first["path"] == "/v1/chat/completions" and body["max_tokens"] == 7
    assert first["auth"] == "Bearer sk-test"
    assert first["port"] == second["port"]  # one client, one kept-alive connection


def test_no_auth_header_without_key(server: FakeLlmServer) -> None:
    with OpenAIBackend(server.url + "/", "m") as backend:
        backend.complete("x")
    assert server.requests[0]["auth"] is None and server.requests[0]["path"].startswith("/v1/")


def test_server_error_raises_llm_error(server: FakeLlmServer, llm: Any) -> None:
    server.fail = (500, '{"error": "model tiny-model not loaded"}')
    with pytest.raises(LlmError, match="HTTP 500") as info:
        llm.complete("x")
    assert info.value.code == "llm_error" and info.value.details["http_status"] == 500
    assert server.url not in info.value.message and "not loaded" in info.value.message


@pytest.mark.parametrize("raw", ["not json", '{"unexpected": 1}', '{"choices": []}'])
def test_malformed_reply_raises_llm_error(server: FakeLlmServer, llm: Any, raw: str) -> None:
    server.raw = raw
    with pytest.raises(LlmError, match="malformed"):
        llm.complete("x")


def test_unreachable_server_raises_llm_unavailable() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with (
        OllamaBackend(f"http://127.0.0.1:{port}", "m", timeout=2) as backend,
        pytest.raises(LlmUnavailable) as info,
    ):
        backend.complete("x")
    assert info.value.code == "llm_unavailable" and str(port) not in info.value.message


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [(("ftp://x", "m"), {}), (("http://127.0.0.1:1", ""), {})],
)
def test_bad_backend_config(args: tuple[str, str], kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        OllamaBackend(*args, **kwargs)


def test_parse_json_finds_fenced_or_embedded_objects() -> None:
    assert parse_json('{"a": 1}') == {"a": 1}
    assert parse_json('Sure!\n```json\n{"a": [1, 2]}\n```') == {"a": [1, 2]}
    assert parse_json('Here: {"a": {"b": 2}} done') == {"a": {"b": 2}}
    with pytest.raises(LlmBadOutput):
        parse_json("{'a': 1,}")


# -- index prose ---------------------------------------------------------------------


def world(mem: Memory) -> dict[str, str]:
    maya = mem.remember("Maya lives in Lisbon", name="Maya", domain="people")
    acme = mem.remember("Acme builds schedulers", name="Acme", domain="companies")
    mem.relate(maya.id, "works_at", acme.id)
    return {"Maya": maya.id, "Acme": acme.id}


PROSE = "Maya, in people, works at Acme (companies), which builds schedulers."


def test_enrich_index_stores_prose_naming_the_model(
    mem: Memory, server: FakeLlmServer, llm: Any
) -> None:
    world(mem)
    heuristic = mem.index()
    server.answer = lambda body: f"  {PROSE}\n"
    event = mem.enrich_index(llm)
    assert event.type == INDEX_ENRICHED and event.payload.model == llm.model_id
    assert event.meta.agent == llm.model_id and event.stream == f"enrichment:{event.id}"
    assert event.payload.covers_seq == event.seq - 1 and event.payload.max_tokens == 500
    assert heuristic in server.requests[0]["body"]["messages"][-1]["content"]
    assert mem.index(prose=True) == PROSE and mem.index() == heuristic
    assert mem.recall("Maya", k=1, with_index=True).index == heuristic
    enriched_at = mem.seq
    # a change to anything the index shows makes the prose stale: the heuristic index again
    mem.remember("Bob joined", name="Bob", domain="people")
    assert mem.index(prose=True) == mem.index() != heuristic
    assert mem.index(prose=True, as_of=enriched_at) == PROSE


def test_enrich_index_keeps_the_budget(mem: Memory, server: FakeLlmServer, llm: Any) -> None:
    world(mem)
    server.answer = lambda body: " ".join(["Maya works at Acme."] * 400)
    event = mem.enrich_index(llm, max_tokens=100)
    assert estimate_tokens(event.payload.text) <= 100
    assert estimate_tokens(mem.index(prose=True, max_tokens=64)) <= 64


def test_revert_and_redo_index_prose(mem: Memory, server: FakeLlmServer, llm: Any) -> None:
    world(mem)
    server.answer = lambda body: PROSE
    event = mem.enrich_index(llm)
    before_revert = mem.seq
    reverted = mem.revert_enrichment(event.id, reason="too florid")
    assert reverted.type == ENRICHMENT_REVERTED and reverted.payload.target == event.id
    assert reverted.stream == event.stream
    assert mem.index(prose=True) == mem.index()  # back to the heuristic index
    assert mem.index(prose=True, as_of=before_revert) == PROSE  # history keeps it
    with pytest.raises(Conflict):
        mem.revert_enrichment(event.id)
    server.answer = lambda body: "Redone: " + PROSE
    mem.enrich_index(llm)
    assert mem.index(prose=True) == "Redone: " + PROSE


def test_llm_failure_writes_nothing(mem: Memory, server: FakeLlmServer, llm: Any) -> None:
    ids = world(mem)
    before = mem.seq
    server.fail = (503, "busy")
    with pytest.raises(LlmError):
        mem.enrich_index(llm)
    with pytest.raises(LlmError):
        mem.extract(ids["Maya"], llm)
    server.fail = None
    server.answer = lambda body: "   "
    with pytest.raises(LlmBadOutput):
        mem.enrich_index(llm)
    assert mem.seq == before
    with pytest.raises(NotFound):
        mem.revert_enrichment("0" * 32)
    with pytest.raises(InvalidInput):
        mem.enrich_index(object())  # type: ignore[arg-type]


def test_prose_written_before_a_forget_is_hidden_and_compacted(
    tmp_path: Path, server: FakeLlmServer
) -> None:
    path = tmp_path / "p.engram"
    server.answer = lambda body: "Zanzibarian secret: Maya works at Acme."
    with Memory.open(path, embedder=None) as mem, OllamaBackend(server.url, "m") as llm:
        ids = world(mem)
        mem.enrich_index(llm)
        mem.forget(ids["Maya"])
        assert "Zanzibarian" not in mem.index(prose=True)
        assert mem.compact() >= 2
    data = b"".join(Path(f).read_bytes() for f in tmp_path.rglob("*") if f.is_file())
    assert b"Zanzibarian" not in data


# -- extraction ----------------------------------------------------------------------


EXTRACTED = {
    "entities": [
        {"name": "Maya", "type": "person", "summary": "An engineer"},
        {"name": "Globex", "type": "organization", "summary": "A logistics firm"},
        {"name": "Porto", "type": "place"},
    ],
    "facts": [
        {"subject": "Maya", "relation": "works at", "object": "Globex"},
        {"subject": "Globex", "relation": "based_in", "object": "Porto"},
        {"subject": "Nobody", "relation": "knows", "object": "Maya"},
    ],
}


def test_extract_writes_entities_and_facts_naming_the_model(
    mem: Memory, server: FakeLlmServer, llm: Any
) -> None:
    ids = world(mem)
    note = mem.remember("Maya moved to Globex in Porto", domain="journal")
    index_before = mem.index()
    server.answer = lambda body: "```json\n" + json.dumps(EXTRACTED) + "\n```"
    record = mem.extract(note.id, llm)
    assert record.type == ENRICHMENT_EXTRACTED and record.payload.model == llm.model_id
    assert record.payload.memory == note.id and record.payload.linked == [ids["Maya"]]
    assert "Maya moved to Globex" in server.requests[0]["body"]["messages"][-1]["content"]
    globex, porto = (mem.find(n) for n in ("Globex", "Porto"))
    assert set(record.payload.created) == {globex.id, porto.id}
    assert globex.kind == "entity" and globex.domain == "journal"
    assert globex.text == "A logistics firm" and porto.text == "Porto"
    prov = mem.provenance(globex.id, "text")
    assert prov.agent == llm.model_id and prov.source == "llm"
    assert {(n.edge.rel, n.node.name) for n in mem.neighbors(note.id)} == {
        ("mentions", "Maya"), ("mentions", "Globex"), ("mentions", "Porto")}
    assert [n.node.name for n in mem.neighbors(ids["Maya"], rel="works_at")] == ["Acme", "Globex"]
    assert [n.node.name for n in mem.neighbors(globex.id, rel="based_in")] == ["Porto"]
    assert len(record.payload.edges) == 5  # the fact about "Nobody" names no entity
    text = mem.index()
    assert "**Globex** (journal): A logistics firm" in text
    assert "journal -> people: mentions" in text
    # revert: the entities it created are forgotten, its edges removed, the index as before
    mem.revert_enrichment(record.id)
    assert not mem.exists(globex.id) and not mem.exists(porto.id) and mem.exists(ids["Maya"])
    assert mem.neighbors(note.id) == []
    assert [n.node.name for n in mem.neighbors(ids["Maya"], rel="works_at")] == ["Acme"]
    unseq = re.compile(r" \(as of seq \d+\)")
    assert unseq.sub("", mem.index()) == unseq.sub("", index_before)


@pytest.mark.parametrize(
    "answer",
    ["I could not find any entities.", '{"entities": "Maya"}',
     '{"entities": [{"type": "person"}]}', '[1, 2, 3]'],
)
def test_extract_rejects_malformed_model_json(
    mem: Memory, server: FakeLlmServer, llm: Any, answer: str
) -> None:
    ids = world(mem)
    server.answer = lambda body: answer
    before = mem.seq
    with pytest.raises(LlmBadOutput) as info:
        mem.extract(ids["Maya"], llm)
    assert info.value.code == "llm_bad_output" and mem.seq == before


def test_extract_of_a_missing_memory_asks_nothing(mem: Memory, server: FakeLlmServer) -> None:
    with OllamaBackend(server.url, "m") as llm, pytest.raises(NotFound):
        mem.extract("nope", llm)
    assert server.requests == []


class ScriptedLlm:
    """Any object with model_id and complete() is a backend: no server needed."""

    model_id = "scripted:v1"

    def __init__(self, answer: str) -> None:
        self.answer = answer

    def complete(self, prompt: str, *, system: str | None = None, max_tokens: int = 512) -> str:
        return self.answer


def test_writes_and_recall_never_need_an_llm_and_plugins_work(mem: Memory) -> None:
    ids = world(mem)
    assert mem.recall("Maya", k=1)[0].id == ids["Maya"]
    record = mem.extract(ids["Maya"], ScriptedLlm(json.dumps(
        {"entities": [{"name": "Lisbon", "type": "place"}], "facts": []})))
    assert record.meta.agent == "scripted:v1" and mem.find("Lisbon").kind == "entity"


def test_read_only_store_reads_the_index_but_asks_no_model(
    tmp_path: Path, server: FakeLlmServer
) -> None:
    path = tmp_path / "r.engram"
    with Memory.open(path, embedder=None) as mem:
        ids = world(mem)
        text = mem.index()
    with Memory.open(path, embedder=None, read_only=True) as ro, OllamaBackend(
        server.url, "m"
    ) as llm:
        assert ro.index() == text
        with pytest.raises(ReadOnly):
            ro.enrich_index(llm)
        with pytest.raises(ReadOnly):
            ro.extract(ids["Maya"], llm)
    assert server.requests == []


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12,
)
_entity = st.fixed_dictionaries(
    {"name": st.text(max_size=40)},
    optional={"type": st.text(max_size=12), "summary": st.text(max_size=80),
              "domain": st.none() | st.text(max_size=12)},
)
_fact = st.fixed_dictionaries(
    {"subject": st.text(max_size=20), "relation": st.text(max_size=20),
     "object": st.text(max_size=20)})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answer=st.one_of(
    _json.map(json.dumps),
    st.fixed_dictionaries({"entities": st.lists(_entity, max_size=6),
                           "facts": st.lists(_fact, max_size=6)}).map(json.dumps),
))
def test_extract_takes_any_answer_safely(answer: str) -> None:
    """Whatever the model says: a valid commit, or LlmBadOutput and nothing written."""
    with Memory.open(":memory:", embedder=None) as mem:
        ids = world(mem)
        before = mem.seq
        try:
            record = mem.extract(ids["Maya"], ScriptedLlm(answer))
        except LlmBadOutput:
            assert mem.seq == before
            return
        assert record.type == ENRICHMENT_EXTRACTED and mem.index().startswith("# Memory index")
        mem.revert_enrichment(record.id)
        assert all(not mem.exists(node_id) for node_id in record.payload.created)

"""The explorer in a real browser (headless Chromium) against a real ``engram serve``
holding the demo data: recall with signals, provenance of a clicked node, the timeline
back to "Maya lives in Berlin", forgetting, a read-only token, a wrong token. Each test
saves a screenshot in its tmp dir."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ui.conftest import DemoServer

TIMEOUT = 20_000  # ms: what the page gets to show something (first loads embed a query)


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    tab = context.new_page()
    tab.set_default_timeout(TIMEOUT)
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield tab
    finally:
        context.close()
    assert not errors, errors  # no uncaught script error on any page


def _open(page: Any, server: DemoServer, token: str | None = "write") -> None:
    page.goto(server.url(server.tokens.get(token, token) if token else None))
    page.wait_for_selector("#app:not([hidden])")
    page.wait_for_function("() => window.explorer && window.explorer.cy"
                           " && window.explorer.cy.nodes().length > 0")


def _click_node(page: Any, name: str, *, double: bool = False) -> None:
    """A real mouse click on the graph node labelled ``name`` (cytoscape draws on a canvas)."""
    x, y = page.evaluate(
        """(name) => {
             const n = window.explorer.cy.nodes().filter(n => n.data('label') === name)[0];
             const p = n.renderedPosition(); return [p.x, p.y]; }""", name)
    box = page.locator("#graph").bounding_box()
    (page.mouse.dblclick if double else page.mouse.click)(box["x"] + x, box["y"] + y)


def _show_domain(page: Any, domain: str, *, has: str) -> None:
    """Pick ``domain`` in the graph and wait for that drawing (with a node labelled
    ``has``): clicking a node of a drawing being replaced would miss it."""
    before = page.evaluate("() => window.explorer.draws")
    page.select_option("#graph-domain", domain)
    page.wait_for_function(
        """([before, has]) => window.explorer.draws > before
             && window.explorer.cy.nodes().some(n => n.data('label') === has)""",
        arg=[before, has])


def _maya_update_seq(server: DemoServer) -> tuple[int, int]:
    """The seq of Maya's creation and of the update that moved her to Lisbon."""
    maya = server.api("GET", "/v1/namespaces/demo/find", params={"name": "Maya"}).json()
    history = server.api("GET", f"/v1/namespaces/demo/memories/{maya['id']}/history").json()
    seqs = [e["seq"] for e in history["items"] if e["type"].startswith("node.")]
    return seqs[0], seqs[-1]


def test_recall_shows_hits_with_the_signals_that_found_them(
        page: Any, demo_server: DemoServer, shot_dir: Path) -> None:
    _open(page, demo_server)
    page.fill("#query", "Why did the staging deploy fail?")
    page.press("#query", "Enter")
    page.wait_for_selector("#hits li .signal")
    hits = page.locator("#hits li")
    assert hits.count() >= 2
    first = hits.first.inner_text()
    assert "migration" in first.lower() or "staging" in first.lower(), first
    signals = hits.first.locator(".signal").all_inner_texts()
    assert any(re.match(r"(vector|text) rank \d+ · score [\d.]+", s) for s in signals), signals
    assert "people" in page.inner_text("#index") or "chat" in page.inner_text("#index")
    page.screenshot(path=str(shot_dir / "recall.png"))
    # only what the extractor wrote: the demo's entities, none of the chat turns
    page.fill("#query", "Where does Maya live?")
    page.fill("#recall-by", "extractor")
    page.press("#query", "Enter")
    page.wait_for_function("() => document.querySelector('#hits .hit-text')?.textContent"
                           " === 'Maya lives in Lisbon'")
    texts = page.locator("#hits .hit-text").all_inner_texts()
    assert texts and texts[0] == "Maya lives in Lisbon", texts
    assert not any(":" in t for t in texts), texts  # chat turns read "Speaker: ..."


def test_clicking_a_node_shows_its_provenance_and_versions(
        page: Any, demo_server: DemoServer, shot_dir: Path) -> None:
    _open(page, demo_server)
    _show_domain(page, "people", has="Maya")
    _click_node(page, "Maya")
    page.wait_for_selector("#provenance tr")
    assert page.inner_text("#selected-text") == "Maya lives in Lisbon"
    prov = page.inner_text("#provenance")
    city = [line for line in prov.split("\n") if "extractor" in line and "s3" in line]
    assert "attrs.city" in prov and city, prov
    assert "sample_conversation.json#s3:1" in prov  # the source of the update
    page.wait_for_selector("#versions li >> nth=1")
    versions = page.inner_text("#versions")
    assert "Maya lives in Berlin" in versions and "Maya lives in Lisbon" in versions
    assert page.locator("#versions del").first.inner_text() != ""  # a diff, before → after
    page.screenshot(path=str(shot_dir / "provenance.png"))


def test_dragging_the_timeline_back_shows_maya_in_berlin_again(
        page: Any, demo_server: DemoServer, shot_dir: Path) -> None:
    created, moved = _maya_update_seq(demo_server)
    _open(page, demo_server)
    _show_domain(page, "people", has="Maya")
    _click_node(page, "Maya")
    page.wait_for_function("() => document.querySelector('#selected-text')"
                           "?.textContent === 'Maya lives in Lisbon'")
    page.fill("#query", "Where does Maya live?")
    page.press("#query", "Enter")
    page.wait_for_selector("#hits li")
    assert "Lisbon" in page.inner_text("#hits")
    # drag the slider's thumb from the right end to a seq between Maya's creation and the move
    slider = page.locator("#slider")
    box = slider.bounding_box()
    lo, hi = (int(slider.get_attribute(a)) for a in ("min", "max"))
    target = (created + moved) // 2
    thumb = 8  # half of Chromium's range thumb: the track runs from thumb to width - thumb
    to_x = lambda seq: box["x"] + thumb + (box["width"] - 2 * thumb) * (seq - lo) / (hi - lo)  # noqa: E731
    page.mouse.move(to_x(hi), box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(to_x(target), box["y"] + box["height"] / 2, steps=8)
    page.mouse.up()
    page.wait_for_function("() => document.querySelector('#selected-text')"
                           "?.textContent === 'Maya lives in Berlin'")
    seq = int(slider.input_value())
    assert created <= seq < moved, (created, seq, moved)
    assert "as of then" in page.inner_text("#point")
    page.wait_for_function("() => document.querySelector('#hits').textContent.includes('Berlin')")
    events = page.inner_text("#events")
    assert "created Maya" in events and "updated Maya" not in events  # the window ends there
    page.screenshot(path=str(shot_dir / "timeline.png"))
    page.click("#to-now")
    page.wait_for_function("() => document.querySelector('#selected-text')"
                           "?.textContent === 'Maya lives in Lisbon'")


def test_forgetting_a_memory_removes_it_everywhere(
        page: Any, demo_server: DemoServer, shot_dir: Path) -> None:
    _open(page, demo_server)
    note = "The parking garage code changes every Monday"
    page.fill("#remember-text", note)
    page.fill("#remember-domain", "notes")
    page.click("#remember-form button")
    page.wait_for_function(
        f"() => document.querySelector('#selected-text')?.textContent === {note!r}")
    page.fill("#query", "parking garage code")
    page.press("#query", "Enter")
    page.wait_for_function(f"() => document.querySelector('#hits').textContent.includes({note!r})")
    memory_id = page.evaluate("() => window.explorer.selected")
    page.click("#forget")
    dialog = page.locator("#confirm")
    assert dialog.is_visible() and "compaction" in dialog.inner_text()
    page.screenshot(path=str(shot_dir / "forget-confirm.png"))
    page.click("#confirm-forget")
    page.wait_for_function("() => document.querySelector('#status').textContent.includes('forgot')")
    page.wait_for_selector("#forgotten")
    page.wait_for_function(f"() => !document.querySelector('#hits').textContent.includes({note!r})")
    page.wait_for_function("() => document.querySelector('#events').textContent.includes('forgot')")
    assert note not in page.inner_text("body")
    r = demo_server.api("GET", f"/v1/namespaces/demo/memories/{memory_id}")
    assert r.status_code == 404
    page.screenshot(path=str(shot_dir / "forgotten.png"))


def test_a_read_only_token_sees_no_edit_controls(
        page: Any, demo_server: DemoServer, shot_dir: Path) -> None:
    _open(page, demo_server, "read")
    assert "read token" in page.inner_text("#who")
    for selector in ("[data-edit]", "#remember-form", "#forget", "#update-form", "#relate-form"):
        assert page.locator(selector).count() == 0, selector
    _click_node(page, page.evaluate("() => window.explorer.cy.nodes()[0].data('label')"))
    page.wait_for_selector("#provenance")
    assert page.locator("#forget").count() == 0 and page.locator("button.danger").count() == 0
    page.fill("#query", "deploys")  # reading still works
    page.press("#query", "Enter")
    page.wait_for_selector("#hits li")
    page.screenshot(path=str(shot_dir / "read-only.png"))


def test_a_wrong_token_is_refused(page: Any, demo_server: DemoServer, shot_dir: Path) -> None:
    page.goto(demo_server.url("eng_" + "w" * 43))
    page.wait_for_selector("#login:not([hidden])")
    assert "Refused" in page.inner_text("#login-error")
    assert page.locator("#app").is_hidden()
    assert page.evaluate("() => window.explorer.cy") is None  # nothing was loaded
    page.screenshot(path=str(shot_dir / "refused.png"))
    page.fill("#token", demo_server.tokens["read"])  # the sign-in form then opens it
    page.click("#login-form button")
    page.wait_for_selector("#app:not([hidden])")
    assert "read token" in page.inner_text("#who")


def _remember(server: DemoServer, **body: Any) -> str:
    r = server.api("POST", "/v1/namespaces/demo/memories", json=body)
    assert r.status_code in (200, 201), r.text
    return str(r.json()["id"])


def test_clicking_an_event_jumps_the_timeline_there(
        page: Any, demo_server: DemoServer, shot_dir: Path) -> None:
    created, _ = _maya_update_seq(demo_server)
    _open(page, demo_server)
    page.select_option("#window", "all")
    item = page.locator("#events li", has_text="created Maya").first
    item.click()
    page.wait_for_function("() => document.querySelector('#selected-text')"
                           "?.textContent === 'Maya lives in Berlin'")
    assert int(page.locator("#slider").input_value()) == created
    assert "as of then" in page.inner_text("#point")
    page.screenshot(path=str(shot_dir / "event-jump.png"))


def test_the_time_slider_goes_back_before_anything_was_written(
        page: Any, demo_server: DemoServer, shot_dir: Path) -> None:
    _open(page, demo_server)
    _show_domain(page, "people", has="Maya")
    _click_node(page, "Maya")
    page.wait_for_selector("#provenance")
    page.check("input[name=tmode][value=time]")
    assert "UTC" in page.inner_text("#point")
    box = page.locator("#slider").bounding_box()
    middle = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] - 8, middle)
    page.mouse.down()
    page.mouse.move(box["x"] + 2, middle, steps=6)
    page.mouse.up()
    page.wait_for_function("() => document.querySelector('#detail').textContent"
                           ".includes('does not exist at this point')")
    assert "(seq 0)" in page.inner_text("#point")
    page.screenshot(path=str(shot_dir / "time-mode.png"))


def test_update_and_relate_through_the_page(
        page: Any, demo_server: DemoServer, shot_dir: Path) -> None:
    _open(page, demo_server)
    page.fill("#remember-text", "Ben is on the infra team")
    page.fill("#remember-domain", "people")
    page.fill("#remember-name", "Ben")
    page.click("#remember-form button")
    page.wait_for_function("() => document.querySelector('#selected-text')"
                           "?.textContent === 'Ben is on the infra team'")
    page.fill("#update-text", "Ben leads the infra team")
    page.click("#update-form button")
    page.wait_for_function("() => document.querySelector('#selected-text')"
                           "?.textContent === 'Ben leads the infra team'")
    page.wait_for_function("() => document.querySelectorAll('#versions li').length === 2")
    assert "Ben is on the infra team" in page.inner_text("#versions")
    page.fill("#relate-rel", "reports_to")
    page.fill("#relate-dst", "Maya")
    page.click("#relate-form button")
    page.wait_for_function("() => document.querySelector('#status').textContent"
                           ".includes('related: reports_to Maya')")
    ben = demo_server.api("GET", "/v1/namespaces/demo/find", params={"name": "Ben"}).json()
    assert ben["text"] == "Ben leads the infra team"
    out = demo_server.api("GET", f"/v1/namespaces/demo/memories/{ben['id']}/neighbors").json()
    assert [(n["edge"]["rel"], n["node"]["name"]) for n in out["items"]] == [
        ("reports_to", "Maya")]
    page.screenshot(path=str(shot_dir / "update-relate.png"))


def test_double_clicking_a_node_expands_its_neighbours(
        page: Any, demo_server: DemoServer, shot_dir: Path) -> None:
    maya = demo_server.api("GET", "/v1/namespaces/demo/find", params={"name": "Maya"}).json()
    trip = _remember(demo_server, text="Lisbon trip in June", name="Lisbon trip",
                     domain="travel", kind="entity")
    museum = _remember(demo_server, text="The tile museum", name="Tile museum",
                       domain="places", kind="entity")
    for src, rel, dst in ((maya["id"], "plans", trip), (trip, "includes", museum)):
        r = demo_server.api("POST", "/v1/namespaces/demo/edges",
                            json={"src": src, "rel": rel, "dst": dst})
        assert r.status_code == 201
    _open(page, demo_server)
    _show_domain(page, "people", has="Lisbon trip")
    labels = "() => window.explorer.cy.nodes().map(n => n.data('label'))"
    assert "Tile museum" not in page.evaluate(labels)
    _click_node(page, "Lisbon trip", double=True)
    page.wait_for_function(
        "() => window.explorer.cy.nodes().some(n => n.data('label') === 'Tile museum')")
    assert page.evaluate("() => window.explorer.cy.edges('.bridge').length") >= 3
    page.screenshot(path=str(shot_dir / "expand.png"))


def test_contexts_show_their_staged_writes_and_commit(
        page: Any, demo_server: DemoServer, shot_dir: Path) -> None:
    ctx = "/v1/namespaces/demo/contexts"
    assert demo_server.api("POST", ctx, json={"name": "plan", "agent": "planner"}).is_success
    r = demo_server.api("POST", f"{ctx}/plan/memories",
                        json={"text": "Draft: Acme may slip to Q3", "domain": "plans"})
    assert r.status_code == 201
    draft = r.json()["id"]
    _open(page, demo_server)
    box = page.locator("#contexts")
    box.locator("text=/\\d+ staged/").wait_for()
    box.locator("button", has_text="show").click()
    box.locator("li", has_text="created Draft: Acme may slip to Q3").wait_for()
    page.screenshot(path=str(shot_dir / "context.png"))
    box.locator("button", has_text="commit").click()
    box.locator("text=No open contexts.").wait_for()
    r = demo_server.api("GET", f"/v1/namespaces/demo/memories/{draft}", token="read")
    assert r.status_code == 200 and r.json()["text"] == "Draft: Acme may slip to Q3"

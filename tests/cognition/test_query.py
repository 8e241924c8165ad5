"""The reflection query builder: each step alone and combined, the compiled plan,
invalid combinations, contrasting_with semantics, caused_by depth bound, as-of."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from engramdb import InvalidQuery, Memory, NotFound
from engramdb.cognition import Query, QueryResult
from engramdb.events import now_us
from engramdb.recall.embed import HashingEmbedder

from ._clock import DAY, FakeClock


@dataclass
class World:
    mem: Memory
    clock: FakeClock
    ids: dict[str, str]


@pytest.fixture
def world() -> Iterator[World]:
    """Deploy memories with outcomes and goals, a causal chain, another domain."""
    clock = FakeClock(now_us())
    mem = Memory.open(":memory:", embedder=HashingEmbedder(dim=256), clock=clock,
                      record_reads=True)
    now = clock.now
    specs = {
        "fail_migration": ("deploy failed on staging: migration timed out", "ops", now - 2 * DAY),
        "ok_migration": ("deploy on staging succeeded after a longer migration timeout", "ops",
                         now - 1 * DAY),
        "fail_disk": ("deploy failed on staging: disk full", "ops", now - 20 * DAY),
        "ok_prod": ("deploy to production succeeded", "ops", now - 3 * DAY),
        "lunch": ("team lunch is pizza on friday", "people", now - 1 * DAY),
        "rollback": ("rollback of release 2.1", "ops", now - 2 * DAY),
        "postmortem": ("postmortem scheduled for the release", "ops", now - 2 * DAY),
        "action": ("action item: add a migration dry run", "ops", now - 2 * DAY),
        "training": ("training on migrations for the team", "ops", now - 2 * DAY),
    }
    ids = {key: mem.remember(text, domain=domain, valid_from=when).id
           for key, (text, domain, when) in specs.items()}
    mem.record_outcome(ids["fail_migration"], "failure", goal="ship v2")
    mem.record_outcome(ids["ok_migration"], "success", goal="ship v2")
    mem.record_outcome(ids["fail_disk"], "failure", goal="ship v1")
    mem.record_outcome(ids["ok_prod"], "success", goal="ship v1")
    mem.record_outcome(ids["lunch"], "success")
    # fail_migration -caused-> rollback -led_to-> postmortem <-(action -caused_by-> postmortem)
    # -> training (depth 4)
    mem.relate(ids["fail_migration"], "caused", ids["rollback"])
    mem.relate(ids["rollback"], "led_to", ids["postmortem"])
    mem.relate(ids["action"], "caused_by", ids["postmortem"])
    mem.relate(ids["action"], "caused", ids["training"])
    mem.relate(ids["rollback"], "mentions", ids["lunch"])  # not causal
    yield World(mem, clock, ids)
    mem.close()


def names(world: World, results: list[QueryResult]) -> list[str]:
    by_id = {v: k for k, v in world.ids.items()}
    return [by_id[r.id] for r in results]


# -- each step alone -----------------------------------------------------------


def test_similar_to_ranks_by_cosine_and_applies_min_score(world: World) -> None:
    q = world.mem.query().similar_to("deploy failed on staging", min_score=0.4)
    results = q.run()
    found = names(world, results)
    assert found[:2] == ["fail_disk", "fail_migration"] and "lunch" not in found
    assert all(r.score >= 0.4 and r.similarity == r.score for r in results)
    assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)
    assert "similar to 'deploy failed on staging'" in results[0].reasons[0]
    everything = world.mem.query().similar_to("deploy failed on staging").limit(100).run()
    assert len(everything) > len(results)


def test_with_outcome_uses_the_latest_outcome(world: World) -> None:
    assert sorted(names(world, world.mem.query().with_outcome("FAILURE").run())) == [
        "fail_disk", "fail_migration"]
    world.mem.record_outcome(world.ids["fail_disk"], "success", goal="ship v1")
    assert names(world, world.mem.query().with_outcome("failure").run()) == ["fail_migration"]


def test_in_domain(world: World) -> None:
    assert names(world, world.mem.query().in_domain("people").run()) == ["lunch"]
    assert world.mem.query().in_domain("nowhere").run() == []


def test_within_uses_valid_from_and_the_query_time(world: World) -> None:
    found = set(names(world, world.mem.query().within(days=2).limit(100).run()))
    assert found == {"fail_migration", "ok_migration", "lunch", "rollback", "postmortem",
                     "action", "training"}
    assert set(names(world, world.mem.query().within(hours=36).run())) == {
        "ok_migration", "lunch"}


def test_for_goal(world: World) -> None:
    assert sorted(names(world, world.mem.query().for_goal("Ship V2").run())) == [
        "fail_migration", "ok_migration"]


def test_caused_by_follows_causal_edges_with_a_depth_bound(world: World) -> None:
    q = world.mem.query()
    root = world.ids["fail_migration"]
    assert names(world, q.caused_by(root, depth=1).run()) == ["rollback"]
    assert set(names(world, q.caused_by(root, depth=2).run())) == {"rollback", "postmortem"}
    assert set(names(world, q.caused_by(root).run())) == {"rollback", "postmortem", "action"}
    deep = q.caused_by(root, depth=4).limit(100).run()
    assert set(names(world, deep)) == {"rollback", "postmortem", "action", "training"}
    assert "lunch" not in names(world, deep)  # 'mentions' is not causal
    hops = {n: r.reasons[0] for n, r in zip(names(world, deep), deep, strict=True)}
    assert "(4 hop(s))" in hops["training"] and "(1 hop(s))" in hops["rollback"]
    # direction: nothing caused the root
    assert q.caused_by(world.ids["training"]).run() == []


def test_as_of_sees_the_past(world: World) -> None:
    mem = world.mem
    before = mem.seq
    late = mem.remember("deploy failed on staging again", domain="ops")
    mem.record_outcome(late.id, "failure")
    mem.record_outcome(world.ids["fail_disk"], "success")
    now_failed = set(names(world, [r for r in mem.query().with_outcome("failure").run()
                                   if r.id != late.id]))
    assert now_failed == {"fail_migration"}
    past = mem.query().with_outcome("failure").as_of(before).run()
    assert sorted(names(world, past)) == ["fail_disk", "fail_migration"]
    # a seq spelled in digits means that seq, as in Memory.as_of
    assert mem.query().with_outcome("failure").as_of(str(before)).run() == past
    mem.record_outcome(world.ids["rollback"], "success", goal="ship v2")
    assert "rollback" in names(world, mem.query().for_goal("ship v2").run())
    assert "rollback" not in names(world, mem.query().for_goal("ship v2").as_of(before).run())


def test_no_steps_ranks_by_salience(world: World) -> None:
    mem = world.mem
    for _ in range(50):
        mem.get(world.ids["training"])
    mem.flush_accesses()
    results = mem.query().limit(3).run()
    assert results[0].id == world.ids["training"] and results[0].reasons == ("salience",)
    assert [r.score for r in results] == [r.salience for r in results]


def test_superseded_memories_are_left_out_unless_as_of_before(world: World) -> None:
    mem = world.mem
    before = mem.seq
    mem.remember("team lunch is sushi on friday", domain="people", supersedes=world.ids["lunch"])
    assert [r.text for r in mem.query().in_domain("people").run()] == [
        "team lunch is sushi on friday"]
    assert names(world, mem.query().in_domain("people").as_of(before).run()) == ["lunch"]


# -- contrasting_with ----------------------------------------------------------


def test_contrasting_with_finds_similar_context_with_a_different_outcome(world: World) -> None:
    failed = world.ids["fail_migration"]
    results = world.mem.query().contrasting_with(failed, min_score=0.15).run()
    found = names(world, results)
    assert "ok_migration" in found and "ok_prod" in found
    assert "fail_disk" not in found  # same outcome
    assert "fail_migration" not in found  # not itself
    assert "rollback" not in found  # no outcome recorded
    assert "lunch" not in found  # different outcome but not a similar context
    assert all(r.outcome != "failure" for r in results)
    assert "vs 'failure'" in results[0].reasons[0]


def test_issue_example_combination(world: World) -> None:
    failed = world.ids["fail_migration"]
    q = (world.mem.query().similar_to("deploy failed on staging", min_score=0.3)
         .with_outcome("success").contrasting_with(failed, min_score=0.3).within(days=7)
         .in_domain("ops").for_goal("ship v2").limit(10))
    assert names(world, q.run()) == ["ok_migration"]
    result = q.run()[0]
    assert result.outcome == "success" and len(result.reasons) == 6
    # adding a cause that did not lead there empties it
    assert q.caused_by(failed).run() == []


def test_combined_caused_by_and_domain(world: World) -> None:
    q = world.mem.query().caused_by(world.ids["fail_migration"], depth=4).in_domain("ops")
    assert set(names(world, q.run())) == {"rollback", "postmortem", "action", "training"}
    assert q.within(hours=1).run() == []


# -- the plan ------------------------------------------------------------------


def test_plan_starts_from_the_most_selective_step(world: World) -> None:
    q = (world.mem.query().in_domain("ops").for_goal("ship v2")
         .similar_to("deploy", min_score=0.1).within(days=7))
    plan = q.explain()
    assert plan.steps[0].op == "for_goal" and plan.steps[0].role == "candidates"
    assert plan.steps[0].estimate == 2 and plan.steps[0].source == "outcomes (by goal)"
    ops = [s.op for s in plan.steps]
    assert ops.index("in_domain") < ops.index("within") < ops.index("similar_to")
    assert plan.steps[-1].role == "rank" and plan.seq == world.mem.seq
    assert "candidates" in str(plan)
    # similarity alone: a vector pool generates candidates
    alone = world.mem.query().similar_to("deploy").explain()
    assert alone.ops()[0] == ("similar_to", "candidates")
    assert world.mem.query().explain().ops()[0] == ("scan", "candidates")


def test_explain_reads_no_candidates_and_writes_nothing(world: World) -> None:
    head = world.mem.seq
    world.mem.query().similar_to("deploy").in_domain("ops").explain()
    assert world.mem.seq == head


# -- invalid queries -------------------------------------------------------------


@pytest.mark.parametrize("build", [
    lambda q: q.limit(0),
    lambda q: q.limit(1001),
    lambda q: q.limit(True),
    lambda q: q.similar_to("x", min_score=1.5),
    lambda q: q.similar_to("x", min_score=-0.1),
    lambda q: q.similar_to(""),
    lambda q: q.similar_to("x").similar_to("y"),
    lambda q: q.with_outcome(""),
    lambda q: q.within(),
    lambda q: q.within(days=-1),
    lambda q: q.within(days="7"),
    lambda q: q.caused_by("x", depth=0),
    lambda q: q.caused_by("x", depth=11),
    lambda q: q.in_domain(3),
    lambda q: q.for_goal(" "),
    lambda q: q.as_of(-1),
    lambda q: q.as_of("not a time"),
    lambda q: q.as_of(True),
    lambda q: q.contrasting_with("x", min_score=2),
])
def test_invalid_steps_raise_at_build_time(world: World, build) -> None:
    with pytest.raises(InvalidQuery):
        build(world.mem.query())


def test_invalid_combinations_raise_before_running(world: World) -> None:
    mem, ids = world.mem, world.ids
    head = mem.seq
    failed = ids["fail_migration"]
    with pytest.raises(InvalidQuery, match="excludes"):
        mem.query().with_outcome("failure").contrasting_with(failed).run()
    with pytest.raises(InvalidQuery, match="no recorded outcome"):
        mem.query().contrasting_with(ids["rollback"]).explain()
    future = "2999-01-01T00:00:00+00:00"
    with pytest.raises(InvalidQuery, match="future"):
        mem.query().within(days=7).as_of(future).run()
    assert mem.query().as_of(future).in_domain("people").run()  # alone it is just "now"
    with pytest.raises(NotFound):
        mem.query().caused_by("no-such-memory").run()
    with pytest.raises(NotFound):
        mem.query().contrasting_with("no-such-memory").explain()
    assert mem.seq == head


def test_text_only_stores(world: World) -> None:
    with Memory.open(":memory:", embedder=None) as mem:
        a = mem.remember("deploy failed on staging")
        mem.remember("lunch is pizza")
        mem.record_outcome(a.id, "failure")
        results = mem.query().similar_to("staging deploy", min_score=0.5).run()
        assert [r.id for r in results] == [a.id] and results[0].score == pytest.approx(1.0)
        assert "BM25" in mem.query().similar_to("x").explain().steps[0].source
        with pytest.raises(InvalidQuery, match="embedder"):
            mem.query().contrasting_with(a.id).run()
    with Memory.open(":memory:", recall=False) as bare, pytest.raises(InvalidQuery):
        bare.query().similar_to("x").run()


def test_queries_are_immutable_values(world: World) -> None:
    base = world.mem.query()
    narrowed = base.in_domain("people")
    assert isinstance(narrowed, Query) and narrowed is not base
    assert base.domain is None and narrowed.domain == "people"
    assert len(base.limit(100).run()) > len(narrowed.run())
    with pytest.raises(AttributeError):
        narrowed.domain = "ops"  # type: ignore[misc]


def test_namespaces_are_separate(world: World) -> None:
    other = world.mem.namespaced("other")
    other.remember("deploy failed on staging", domain="ops")
    assert [r.text for r in other.query().in_domain("ops").run()] == ["deploy failed on staging"]
    assert "deploy failed on staging" not in [r.text for r in world.mem.query().limit(100).run()]


# -- README --------------------------------------------------------------------


def agent_blocks(markers: tuple[str, ...]) -> list[str]:
    import pathlib
    import re

    readme = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## For agents", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return [b for b in blocks if any(m in b for m in markers)]


def test_readme_for_agents_examples_run(capsys: pytest.CaptureFixture[str]) -> None:
    blocks = agent_blocks(("supersedes=", ".query()", "explain_salience("))
    assert len(blocks) == 3, "README's 'For agents' section lost an example"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
    assert "candidates" in capsys.readouterr().out

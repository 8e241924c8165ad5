"""Several writer processes on one PostgreSQL log, and a follower.

The follower reads ``seq > last`` up to the head it sees, over and over, the
way an engramdb follower does. Seqs must become visible in commit order with
no gaps, or it would pass an event that commits later with a smaller seq and
never apply it: its applied set must equal the table's, in every trial.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from engramdb.log.postgres import PostgresLog

from ..postgres import Schemas, pg_schemas

__all__ = ["pg_schemas"]

WRITER = textwrap.dedent("""
    import sys
    from engramdb.errors import ConcurrencyConflict
    from engramdb.events import Draft
    from engramdb.log.postgres import PostgresLog

    url, schema, name, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    log = PostgresLog(url, schema=schema)
    won = 0
    for i in range(rounds):
        size = 1 + i % 3
        log.append([Draft(type="node.created", stream=f"{name}-{i}-{j}", payload={"text": "x"})
                    for j in range(size)])
        # read-modify-write of one shared stream, optimistic
        log.refresh()  # the head other writers moved
        version = len(log.read_stream("shared"))
        try:
            log.append([Draft(type="node.updated" if version else "node.created",
                              stream="shared", payload={"text": name},
                              expected_version=version)])
            won += 1
        except ConcurrencyConflict:
            pass
    log.close()
    print(won)
""")


def run_trial(schemas: Schemas, writers: int, rounds: int) -> None:
    schema = schemas.new()
    follower = PostgresLog(schemas.url, schema=schema)
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, schemas.url, schema, f"w{n}", str(rounds)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for n in range(writers)
    ]
    applied: list[int] = []
    last = 0
    while True:
        running = any(p.poll() is None for p in procs)
        head = follower.wait(last, 0.02)
        for event in follower.read(after=last, upto=head):
            applied.append(event.seq)
            last = event.seq
        if not running:
            break
    outputs = [p.communicate() for p in procs]
    for p, (_out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
    wins = sum(int(out) for out, _ in outputs)
    head = follower.refresh()
    for event in follower.read(after=last, upto=head):  # the last commits, after exit
        applied.append(event.seq)
    table = [e.seq for e in follower.read(upto=head)]
    assert applied == table == list(range(1, head + 1))
    # every writer's every batch is there; no lost update on the shared stream
    assert sum(1 for e in follower.read() if e.stream != "shared") == writers * sum(
        1 + i % 3 for i in range(rounds))
    shared = follower.read_stream("shared")
    assert len(shared) == wins and [e.version for e in shared] == list(range(1, wins + 1))
    follower.close()


@pytest.mark.parametrize("trial", range(3))
def test_follower_applies_exactly_what_the_writers_committed(
        pg_schemas: Schemas, trial: int) -> None:
    run_trial(pg_schemas, writers=3, rounds=30)

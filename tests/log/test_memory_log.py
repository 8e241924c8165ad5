"""The in-memory reference backend passes the log contract."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from engramdb.events import Registry
from engramdb.log import EventLog, MemoryLog

from .contract import Damage, LogContract, MakeLog


class TestMemoryLog(LogContract):
    @pytest.fixture
    def make_log(self, tmp_path: Any) -> Iterator[MakeLog]:
        made: list[EventLog] = []

        def make(registry: Registry | None = None, *, path: Any = None) -> EventLog:
            log = MemoryLog(registry)
            made.append(log)
            return log

        yield make
        for log in made:
            log.close()

    @pytest.fixture
    def damage(self) -> Damage:
        def hit(log: EventLog, seq: int) -> None:
            assert isinstance(log, MemoryLog)
            event = log._events[seq - 1]
            log._events[seq - 1] = msgspec.structs.replace(event, recorded_at=event.recorded_at ^ 1)

        return hit

    def test_files_is_empty(self, log: EventLog) -> None:
        assert log.files() == []

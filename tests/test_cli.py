"""The CLI is a thin layer: each command calls the facade; errors map to exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engramdb.adapters.cli import app, main

runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def commands() -> list[str]:
    names = [c.name or c.callback.__name__ for c in app.registered_commands]  # type: ignore[union-attr]
    return [n.replace("_", "-") for n in names]


@pytest.mark.parametrize("name", commands())
def test_every_command_has_help(name: str) -> None:
    code, out = run(name, "--help")
    assert code == 0 and "Usage" in out


def test_remember_recall_get_history(tmp_path: Path) -> None:
    store = str(tmp_path / "cli.engram")
    code, out = run("remember", "Deploys moved to Tuesdays", "--domain", "ops", "-s", store)
    assert code == 0
    memory_id = out.strip()
    code, out = run("recall", "when are deploys", "-s", store, "--json", "-k", "1")
    assert code == 0 and json.loads(out)[0]["id"] == memory_id
    code, out = run("get", memory_id, "-s", store)
    assert code == 0 and json.loads(out)["domain"] == "ops"
    code, out = run("history", memory_id, "-s", store, "--json")
    assert code == 0 and [e["type"] for e in json.loads(out)][0] == "node.created"


def test_errors_become_exit_codes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    store = str(tmp_path / "e.engram")
    assert run("init", "-s", store)[0] == 0
    monkeypatch.setattr("sys.argv", ["engram", "get", "nope", "-s", store])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 3  # NotFound
    assert "[not_found]" in capsys.readouterr().err


def test_demo_shows_recall_time_travel_provenance_index_and_forgetting(tmp_path: Path) -> None:
    code, out = run("demo", "--quiet", "--store", str(tmp_path / "demo.engram"))
    assert code == 0, out
    text = " ".join(out.split())  # rich wraps long lines
    assert "recall 'Why did the staging deploy fail?'" in text
    assert "database migration timed out" in text
    assert "Maya lives in Lisbon" in text and "Maya lives in Berlin" in text  # now vs as-of
    assert "provenance of Maya's city = 'Lisbon'" in text and "session s3" in text
    assert "# Memory index: demo" in text and "## Domains" in text
    assert "marker on disk after compaction: gone" in text


def test_unknown_embedder_setting_is_invalid_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ENGRAM_EMBEDDER", "gpt")
    monkeypatch.setattr("sys.argv", ["engram", "init", "-s", str(tmp_path / "x.engram")])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert "ENGRAM_EMBEDDER" in capsys.readouterr().err
    assert not (tmp_path / "x.engram").exists()


def test_hashing_embedder_setting_needs_no_model(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGRAM_EMBEDDER", "hashing")
    store = str(tmp_path / "h.engram")
    code, out = run("remember", "Deploys moved to Tuesdays", "-s", store)
    memory_id = out.strip()
    code, out = run("recall", "deploys", "-s", store, "--json")
    [hit] = json.loads(out)
    assert hit["id"] == memory_id and "vector" in hit["signals"]
    monkeypatch.setenv("ENGRAM_EMBEDDER", "none")
    code, out = run("recall", "deploys", "-s", store, "--json")
    assert code == 0 and "vector" not in json.loads(out)[0]["signals"]


def test_namespaces_do_not_see_each_other(tmp_path: Path) -> None:
    store = str(tmp_path / "ns.engram")
    code, out = run("remember", "The vault code is 4711", "--name", "Vault", "-n", "team-a",
                    "-s", store)
    assert code == 0
    secret = out.strip()
    code, out = run("recall", "vault code", "-n", "team-b", "-s", store, "--json")
    assert code == 0 and json.loads(out) == []
    assert run("get", secret, "-n", "team-b", "-s", store)[0] != 0
    assert run("forget", secret, "-n", "team-b", "-s", store)[0] != 0
    assert run("relate", secret, "knows", secret, "-n", "team-b", "-s", store)[0] != 0
    code, out = run("recall", "vault code", "-n", "team-a", "-s", store, "--json")
    assert code == 0 and [h["id"] for h in json.loads(out)] == [secret]
    code, out = run("get", secret, "-n", "team-a", "-s", store)
    assert code == 0 and json.loads(out)["text"] == "The vault code is 4711"  # forget failed

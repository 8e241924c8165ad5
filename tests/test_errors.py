"""The error tree: stable codes, builtin bases, one mapping for adapters."""

from __future__ import annotations

import pathlib

import pytest

import engramdb.errors as errors
from engramdb import Memory
from engramdb.errors import EngramError, error_info


def all_errors() -> list[type[EngramError]]:
    return [getattr(errors, n) for n in errors.__all__ if n not in ("error_info",)]


def test_codes_are_unique_and_snake_case() -> None:
    codes = [cls.code for cls in all_errors()]
    assert len(codes) == len(set(codes))
    assert all(c.replace("_", "").isalpha() and c.islower() for c in codes)


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        (errors.NotFound, KeyError),
        (errors.InvalidInput, ValueError),
        (errors.InvalidQuery, ValueError),
        (errors.ReadOnly, PermissionError),
        (errors.StoreClosed, RuntimeError),
    ],
)
def test_errors_are_their_builtins(cls: type[EngramError], builtin: type[Exception]) -> None:
    assert issubclass(cls, builtin)
    with pytest.raises(builtin):
        raise cls("x")


def test_error_info_hides_internal_errors() -> None:
    info = error_info(RuntimeError("secret path /x"))
    assert info["code"] == "internal_error" and "secret" not in info["message"]
    info = error_info(errors.NotFound("no memory 'x'"))
    assert (info["code"], info["status"]) == ("not_found", 404)
    assert str(errors.NotFound("plain message")) == "plain message"


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (lambda m: m.remember(123), "invalid_input"),
        (lambda m: m.remember("x", attrs={"a": object()}), "invalid_payload"),
        (lambda m: m.remember("x" * (2 << 20)), "payload_too_large"),
        (lambda m: m.remember("x", id="../etc/passwd"), "invalid_input"),
        (lambda m: m.namespaced("bad namespace!"), "invalid_namespace"),
        (lambda m: m.get("nope"), "not_found"),
        (lambda m: m.relate("nope", "r", "nope2"), "not_found"),
        (
            lambda m: m.update(m.find("existing").id, text="b", expected_version=7),
            "version_conflict",
        ),
        (lambda m: m.as_of(-1), "invalid_input"),
        (lambda m: m.neighbors("x", direction="sideways"), "invalid_input"),
    ],
)
def test_bad_input_is_rejected_and_changes_nothing(call: object, code: str) -> None:
    with Memory.open(":memory:") as mem:
        mem.remember("existing", name="existing")
        before = mem.seq
        with pytest.raises(EngramError) as info:
            call(mem)  # type: ignore[operator]
        assert info.value.code == code
        assert mem.seq == before


def own_exit_codes() -> dict[int, list[str]]:
    codes: dict[int, list[str]] = {}
    for cls in all_errors():
        if "exit_code" in vars(cls):
            codes.setdefault(cls.exit_code, []).append(cls.__name__)
    return codes


def test_every_error_class_has_its_own_exit_code() -> None:
    """A script tells failures apart by exit code: no two classes share one."""
    assert {code: names for code, names in own_exit_codes().items() if len(names) > 1} == {}


def test_cli_docs_list_every_exit_code() -> None:
    docs = (pathlib.Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text()
    section = docs.split("Exit codes", 1)[1].split("\n\n", 1)[0]
    for code, names in own_exit_codes().items():
        assert f"`{code}`" in section, names

"""What is at a path, before anything is written there: the checks that keep a store
path usable and an export from ever overwriting a store.

A store is a set of files: the SQLite database, its ``-wal`` / ``-shm`` /
``-journal``, ``.lock``, ``.head`` (the head marker), ``.tokens`` and the
``.snapshots/`` directory.
:func:`check_store_path` refuses a path no store can live at (empty, a
directory, a file that is not a store, a place the process cannot write),
before a single file is created; :func:`check_export_target` refuses to let an
export replace any file of any store (the open one included, through a symlink or
a hard link), and an earlier export unless told to overwrite.
"""

from __future__ import annotations

import os

from ..errors import CorruptStore, InvalidStorePath, NotFound, TargetExists, TargetIsStore

__all__ = ["SIDECARS", "check_export_target", "check_store_name", "check_store_path",
           "file_kind"]

#: What SQLite and engramdb keep beside a store file ``PATH`` (``PATH.snapshots`` too).
SIDECARS = ("-wal", "-shm", "-journal", ".lock", ".head", ".tokens")  # .lock: older versions
_SQLITE = b"SQLite format 3\x00"
_WAL = (b"\x37\x7f\x06\x82", b"\x37\x7f\x06\x83")
_PARQUET = b"PAR1"


def file_kind(path: str) -> str:
    """``missing``, ``directory``, ``sqlite`` (a database), ``wal`` (a SQLite WAL),
    ``parquet``, ``empty``, ``special`` (not a regular file) or ``other``; a
    symlink is followed."""
    if not os.path.lexists(path) or not os.path.exists(path):
        return "missing"
    if os.path.isdir(path):
        return "directory"
    if not os.path.isfile(path):
        return "special"
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return "other"
    if not head:
        return "empty"
    if head.startswith(_SQLITE):
        return "sqlite"
    if head[:4] in _WAL:
        return "wal"
    if head.startswith(_PARQUET):
        return "parquet"
    return "other"


def check_store_name(path: str) -> str:
    """Refuse (:class:`InvalidStorePath`) a store path that can never name a store
    file: empty, with a NUL, a directory or not a regular file. Returns its
    :func:`file_kind`."""
    if not path.strip():
        raise InvalidStorePath("the store path is empty: give a file name, or ':memory:'"
                               " for a store in RAM", path=path)
    if "\x00" in path:
        raise InvalidStorePath("the store path contains a NUL character", path=path[:200])
    kind = file_kind(path)
    if kind == "directory":
        raise InvalidStorePath(f"{path} is a directory, not a store file", path=path)
    if kind == "special":
        raise InvalidStorePath(f"{path} is not a regular file", path=path)
    return kind


def check_store_path(path: str, *, read_only: bool) -> None:
    """Refuse, creating nothing, a path a store cannot be opened at:
    :class:`InvalidStorePath` for an empty path, a directory, a file that is not
    a store, or a directory this process cannot write in; :class:`CorruptStore`
    for a file that does not begin like a SQLite database; :class:`NotFound` for a
    missing directory (or, ``read_only``, a missing store)."""
    kind = check_store_name(path)
    if kind == "parquet":
        raise InvalidStorePath(f"{path} is an export, not a store: load it into a store with"
                               " `engram import` (Memory.import_events)", path=path)
    if kind == "wal":
        raise InvalidStorePath(f"{path} is a SQLite write-ahead log, not a store: open the"
                               " store file beside it", path=path)
    if kind == "other":
        raise CorruptStore(f"{path} is not a store: it does not begin with the SQLite header"
                           " (if it was a store, it is damaged: restore it from a backup)",
                           path=path)
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise NotFound(f"directory {parent} does not exist", path=path)
    if read_only:
        if kind == "missing":
            raise NotFound(f"no store at {path}", path=path)
        return
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InvalidStorePath(f"cannot write in {parent}: a store needs its directory"
                               " writable (for its lock, WAL and snapshots)", path=path)


def _same(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _store_files(store_path: str) -> list[str]:
    return [store_path, *(store_path + s for s in SIDECARS)]


def check_export_target(target: str, *, store_path: str | None, overwrite: bool) -> None:
    """Refuse to write an export at ``target`` if that would replace a store's file:
    :class:`TargetIsStore` for any file of the store at ``store_path`` (by name,
    symlink or hard link) or any SQLite database or WAL (another store), always;
    :class:`TargetExists` for any other existing file unless ``overwrite``."""
    if not target.strip() or "\x00" in target:
        raise InvalidStorePath("the export path is empty or contains a NUL character",
                               path=target[:200])
    if store_path is not None and store_path != ":memory:":
        real = os.path.realpath(target)
        snapshots = os.path.realpath(store_path + ".snapshots")
        for own in _store_files(store_path):
            if real == os.path.realpath(own) or _same(target, own):
                raise TargetIsStore(f"{target} is a file of the store being exported;"
                                    " an export never overwrites a store", path=target)
        if real.startswith(snapshots + os.sep):
            raise TargetIsStore(f"{target} is inside the store's snapshots directory",
                                path=target)
    kind = file_kind(target)
    if kind == "directory":
        raise InvalidStorePath(f"{target} is a directory: name the export file", path=target)
    if kind in ("sqlite", "wal"):
        raise TargetIsStore(f"{target} is a SQLite database (a store?); an export never"
                            " overwrites a store", path=target)
    if kind == "special":
        raise InvalidStorePath(f"{target} is not a regular file", path=target)
    if kind != "missing" and not overwrite:
        raise TargetExists(f"{target} exists; pass --force (overwrite=True) to replace an"
                           " earlier export", path=target)

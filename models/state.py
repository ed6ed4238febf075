"""Saving and restoring model state: pickle behind a small versioned header.

``--state FILE`` lets a restarted detector continue learning where it stopped. The file is

    b"EXFILSTATE" | 4-byte big-endian header length | JSON header | pickle payload

where the header names the ``kind`` of state, its ``version`` (bumped by the caller when the
pickled classes change incompatibly) and the river, numpy and polars versions that wrote
it. Loading checks kind, version and the river version (river's objects are pickled by
their internals) and raises :class:`~models.exceptions.StateError` on a mismatch instead of
silently misreading; numpy and polars versions are recorded for diagnosis only.

Writes are atomic (a temp file in the same directory, fsync, ``os.replace``), so a crash
mid-save leaves the previous state intact, and the file is created with mode 0o600.

Security: a state file is *trusted input* -- unpickling runs code chosen by whoever wrote
the file. Protect it like a secret (it also holds per-user behaviour profiles): readable
and writable only by the detector's account, never loaded from an untrusted location.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "state.bin"
>>> save_state(path, {"rounds": 3}, kind="demo", version=1)
>>> load_state(path, kind="demo", version=1)
{'rounds': 3}
>>> load_state(path, kind="demo", version=2)
Traceback (most recent call last):
...
models.exceptions.StateError: state file ... is version 1 of 'demo', this build reads version 2; ...
"""

from __future__ import annotations

import io
import json
import os
import pickle
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import river

from models.exceptions import StateError

MAGIC = b"EXFILSTATE"
_LEN_BYTES = 4


def _versions() -> dict[str, str]:
    return {"river": river.__version__, "numpy": np.__version__, "polars": pl.__version__}


def dumps_state(obj: Any, *, kind: str, version: int) -> bytes:
    """``obj`` as the bytes of a state file (header and pickle): for stores that are not
    files (a Kafka topic).

    Raises
    ------
    StateError
        When ``obj`` cannot be pickled.
    """
    header = json.dumps({"kind": kind, "version": version, **_versions()}, sort_keys=True)
    head = header.encode("utf-8")
    try:
        payload = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # pickle raises PicklingError, TypeError, AttributeError ...
        raise StateError(f"cannot pickle the {kind!r} state: {exc}") from exc
    return MAGIC + len(head).to_bytes(_LEN_BYTES, "big") + head + payload


def save_state(path: str | os.PathLike[str], obj: Any, *, kind: str, version: int) -> None:
    """Pickle ``obj`` to ``path`` atomically, behind a header naming ``kind`` and ``version``.

    Raises
    ------
    StateError
        When ``obj`` cannot be pickled or the file cannot be written.
    """
    path = Path(path)
    data = dumps_state(obj, kind=kind, version=version)
    try:
        write_atomic(path, data)
    except OSError as exc:
        raise StateError(f"cannot write state file {path}: {exc}") from exc


def write_atomic(path: Path, data: bytes) -> None:
    """``data`` into ``path``, whole or not at all (mode 0600; ``OSError`` on failure)."""
    tmp = None
    try:
        # mkstemp creates the file with mode 0o600, in the target's directory so that
        # os.replace is an atomic rename on the same file system.
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        tmp = None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def read_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON header of a state file (kind, version, library versions), without unpickling."""
    return _read(Path(path))[0]


def _read(path: Path) -> tuple[dict[str, Any], bytes]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise StateError(f"cannot read state file {path}: {exc}") from exc
    return _split(data, f"state file {path}")


def _split(data: bytes, source: str) -> tuple[dict[str, Any], bytes]:
    start = len(MAGIC) + _LEN_BYTES
    if not data.startswith(MAGIC) or len(data) < start:
        raise StateError(
            f"{source.removeprefix('state file ')} is not an exfil-detector state file (bad magic)"
        )
    n = int.from_bytes(data[len(MAGIC) : start], "big")
    try:
        header = json.loads(data[start : start + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StateError(f"{source} has a damaged header: {exc}") from exc
    if not isinstance(header, dict):
        raise StateError(f"{source} has a damaged header")
    return header, data[start + n :]


def load_state(
    path: str | os.PathLike[str],
    *,
    kind: str,
    version: int,
    moved: Mapping[str, str] | None = None,
) -> Any:
    """Unpickle the state saved by :func:`save_state`, checking kind and versions first.

    ``moved`` maps the module names of pickled classes that have moved since (old name ->
    new name; ``"module:Class"`` for one class that left a module that still exists), so
    that files written before a move still load.

    Raises
    ------
    StateError
        When the file cannot be read, is not a state file, holds another ``kind`` or
        ``version``, was written with another river version, or cannot be unpickled.
    """
    path = Path(path)
    header, payload = _read(path)
    return _unpickle(header, payload, kind, version, f"state file {path}", moved)


def loads_state(
    data: bytes,
    *,
    kind: str,
    version: int,
    source: str,
    moved: Mapping[str, str] | None = None,
) -> Any:
    """Unpickle what :func:`dumps_state` gave, checking kind and versions first
    (``source`` names where the bytes came from, for errors; ``moved`` as in
    :func:`load_state`)."""
    header, payload = _split(data, source)
    return _unpickle(header, payload, kind, version, source, moved)


class _MovedUnpickler(pickle.Unpickler):
    """Finds a class pickled under a module name that has moved under its new name
    (a ``"module:Class"`` key moves that class alone, before its module's own key).

    >>> from collections import OrderedDict
    >>> data = pickle.dumps(OrderedDict(a=1)).replace(b"collections", b"collectionz")
    >>> _MovedUnpickler(io.BytesIO(data), {"collectionz": "collections"}).load()
    OrderedDict([('a', 1)])
    >>> data = pickle.dumps(OrderedDict(a=1))
    >>> _MovedUnpickler(io.BytesIO(data), {"collections:OrderedDict": "nowhere"}).load()
    Traceback (most recent call last):
    ...
    ModuleNotFoundError: No module named 'nowhere'
    """

    def __init__(self, file: io.BytesIO, moved: Mapping[str, str]) -> None:
        super().__init__(file)
        self._moved = moved

    def find_class(self, module: str, name: str) -> Any:
        moved = self._moved.get(f"{module}:{name}") or self._moved.get(module, module)
        return super().find_class(moved, name)


def _unpickle(
    header: dict[str, Any],
    payload: bytes,
    kind: str,
    version: int,
    source: str,
    moved: Mapping[str, str] | None,
) -> Any:
    if header.get("kind") != kind:
        raise StateError(f"{source} holds {header.get('kind')!r} state, expected {kind!r}")
    if header.get("version") != version:
        raise StateError(
            f"{source} is version {header.get('version')} of {kind!r}, this build "
            f"reads version {version}; delete it to start learning afresh"
        )
    if header.get("river") != river.__version__:
        raise StateError(
            f"{source} was written with river {header.get('river')}, this is river "
            f"{river.__version__}; its pickled models may not load correctly"
        )
    try:
        return _MovedUnpickler(io.BytesIO(payload), moved or {}).load()
    except Exception as exc:  # unpickling can raise almost anything on a damaged file
        raise StateError(f"cannot unpickle {source}: {exc}") from exc

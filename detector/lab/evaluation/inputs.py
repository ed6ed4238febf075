"""The logs directory a simulation writes, read against its contract.

::

    labels.json    [{"scenario", "kind", "user", "start", "end", "negative", ...}] (ISO UTC)
    users.json     {"period": {...}, "roles": {role: {...}}, "users": [{"user", "role"}]}
    run.json       {"replay": [log file names], "db": "postgres" | "mariadb", ...}
    config.toml    detector config for these logs (roles, catalog), optional
    catalog.toml   its sensitivity catalog, optional

Without ``run.json``'s ``replay`` the logs are ``postgresql*.csv`` (the simulator's
``postgresql-<time>.csv``, the bundled sample's ``postgresql.csv``), else
``server_audit*.log``. Without ``config.toml`` the config is built from ``users.json``:
each user's role is its peer group, roles scheduled at a fixed time of day
(``scheduled_daily_at``) are service roles, and the catalog is ``catalog.toml`` beside the
logs, else the bundled sample's (the simulator's schema).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Final

import polars as pl

from detector.config import Config, load_config
from detector.exceptions import ConfigError
from detector.lab.evaluation.detections import utc
from detector.lab.evaluation.errors import EvaluationError

_TIME: Final = pl.Datetime("us", "UTC")
LABEL_SCHEMA: Final = pl.Schema(
    {
        "scenario": pl.String,
        "kind": pl.String,
        "user": pl.String,
        "start": _TIME,
        "end": _TIME,
        "negative": pl.Boolean,
    }
)


@dataclass(frozen=True)
class LogsDir:
    """What a logs directory holds, checked."""

    path: Path
    log_files: tuple[Path, ...]
    db: str
    labels: pl.DataFrame
    roles: tuple[tuple[str, str], ...]
    service_roles: frozenset[str]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise EvaluationError(f"cannot read {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise EvaluationError(f"{path} is not valid JSON: {exc}") from exc


def labels_frame(records: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    """Label objects (``labels.json``'s) as a frame with :data:`LABEL_SCHEMA`.

    >>> labels_frame([{"scenario": "s", "kind": "enumeration", "user": "d07",
    ...                "start": "2024-03-06T09:05:00+00:00", "end": "2024-03-06T16:00:00Z",
    ...                "negative": False}]).row(0)[3].isoformat()
    '2024-03-06T09:05:00+00:00'
    """
    try:
        rows = [
            {
                "scenario": str(r.get("scenario", f"label-{k}")),
                "kind": str(r["kind"]),
                "user": str(r["user"]),
                "start": utc(dt.datetime.fromisoformat(r["start"])),
                "end": utc(dt.datetime.fromisoformat(r["end"])),
                "negative": bool(r.get("negative", False)),
            }
            for k, r in enumerate(records)
        ]
    except KeyError as exc:
        raise EvaluationError(f"a label lacks {exc.args[0]!r}") from exc
    except (TypeError, ValueError, AttributeError) as exc:
        raise EvaluationError(f"a label is malformed: {exc}") from exc
    return pl.DataFrame(rows, schema=LABEL_SCHEMA)


def _log_files(path: Path, run: Mapping[str, Any]) -> tuple[Path, ...]:
    named = run.get("replay")
    if named is not None:
        files = tuple(path / str(name) for name in named)
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise EvaluationError(f"{path}/run.json names missing log files: {missing}")
    else:
        files = tuple(sorted(path.glob("postgresql*.csv"))) or tuple(
            sorted(path.glob("server_audit*.log"))
        )
    if not files:
        raise EvaluationError(f"{path}: no audit logs (postgresql*.csv or server_audit*.log)")
    return files


def read_logs_dir(path: Path) -> LogsDir:
    """Read and check a logs directory (see the module docstring).

    Raises
    ------
    EvaluationError
        A required file is missing or malformed, or there is no log to replay.
    """
    if not path.is_dir():
        raise EvaluationError(f"{path} is not a directory")
    run_path = path / "run.json"
    run = _read_json(run_path) if run_path.is_file() else {}
    if not isinstance(run, dict):
        raise EvaluationError(f"{run_path} is not a JSON object")
    files = _log_files(path, run)
    guess = "mariadb" if files[0].name.startswith("server_audit") else "postgres"
    db = str(run.get("db") or guess)
    labels = _read_json(path / "labels.json")
    users = _read_json(path / "users.json")
    if not isinstance(labels, list) or not isinstance(users, dict):
        raise EvaluationError(f"{path}: labels.json must be a list, users.json an object")
    try:
        roles = tuple((str(u["user"]), str(u["role"])) for u in users.get("users", []))
    except (KeyError, TypeError) as exc:
        raise EvaluationError(f"{path}/users.json: a user lacks a name or role") from exc
    role_habits = users.get("roles", {})
    service = frozenset(
        name
        for name, habits in (role_habits.items() if isinstance(role_habits, dict) else ())
        if isinstance(habits, dict) and "scheduled_daily_at" in habits
    )
    return LogsDir(path, files, db, labels_frame(labels), roles, service)


def bundled_catalog() -> Path:
    """The bundled sample's catalog (the simulator's schema)."""
    return Path(str(resources.files("detector") / "data" / "sample" / "catalog.toml"))


def resolve_config(logs: LogsDir) -> Config:
    """The detector config for these logs: their ``config.toml``, else one built from
    ``users.json`` (see the module docstring)."""
    config_file = logs.path / "config.toml"
    try:
        if config_file.is_file():
            return load_config(config_file)
    except ConfigError as exc:
        raise EvaluationError(f"{config_file}: {exc}") from exc
    catalog = logs.path / "catalog.toml"
    return Config(
        catalog=(catalog if catalog.is_file() else bundled_catalog()).resolve(),
        roles=logs.roles,
        service_roles=logs.service_roles,
    )

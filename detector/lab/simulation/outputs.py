"""The files a simulation writes besides the logs: users.json, catalog.toml, config.toml.

``catalog.toml`` and ``config.toml`` make the output directory replayable as it is::

    exfil-detector replay DIR/<run.json "replay" files> --config DIR/config.toml

>>> from .org import build_org
>>> from .plan import build_plan
>>> plan = build_plan(build_org(users=6, days=1, citizens=300), ())
>>> print(catalog_toml(plan, "mariadb").splitlines()[7])
[tables."records.citizens"]
>>> "officer01 = \\"desk_officer\\"" in config_toml(plan, "postgres")
True
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .org import HABITS, Organisation
from .pg_server import LogFiles
from .plan import Plan
from .runner import RunRecord

#: the table name prefix each backend's parser puts in ``tables``
TABLE_PREFIX = {"postgres": "public", "mariadb": "records"}
#: the format name of the log file ``replay`` reads
SOURCE_FORMAT = {"postgres": "pgaudit-csv", "mariadb": "mariadb-audit"}
COLUMNS = {
    "citizens": ("id", "national_id", "full_name", "phone", "address", "birth_date"),
    "travel_records": ("id", "citizen_id", "mode", "origin", "destination", "depart_date"),
    "hotel_stays": ("id", "citizen_id", "hotel", "checkin", "nights"),
}
CITIZEN_CLASSES = {
    "national_id": "national_id",
    "full_name": "name",
    "phone": "phone",
    "address": "address",
    "birth_date": "birth_date",
}
SERVICE_ROLES = ("etl", "backup")


@dataclass(frozen=True)
class LogSet:
    """The log files of one run, whatever formats the server wrote."""

    files: tuple[Path, ...]

    def all(self) -> tuple[Path, ...]:
        return self.files

    @property
    def csv(self) -> Path:
        """The csvlog (PostgreSQL)."""
        for f in self.files:
            if f.suffix == ".csv":
                return f
        raise AttributeError("no csvlog among " + ", ".join(f.name for f in self.files))


@dataclass(frozen=True)
class SimulationResult:
    """Where everything went, and what the run did."""

    out: Path
    logs: LogFiles | LogSet
    raw: LogFiles | LogSet | None
    labels: list[dict[str, Any]]
    record: RunRecord
    server_version: str
    audit_version: str  # pgaudit's or server_audit's
    seconds: float
    db: str = "postgres"

    @property
    def pgaudit_version(self) -> str:
        return self.audit_version

    @property
    def csv(self) -> Path:
        return self.logs.csv

    @property
    def replay(self) -> tuple[Path, ...]:
        """The log files ``exfil-detector replay`` reads (one format of each event)."""
        return (self.logs.all()[0],) if self.db == "mariadb" else (self.csv,)


def write_plan_files(
    out: Path, plan: Plan, record: RunRecord, resolution_ms: int = 1
) -> list[dict[str, Any]]:
    """``labels.json`` (times as run) and ``users.json``; returns the labels.

    A label starts at its first connect, in the log's resolution: a log of whole seconds
    (MariaDB) stamps a statement 0.3 s after a connect at 09:00:00.8 with 09:00:01 but one
    0.1 s after it with 09:00:00, so such labels start on the whole second.
    """
    spans = {i: (a - a % resolution_ms, b) for i, (a, b) in record.spans.items()}
    labels = plan.labels(spans)
    write_json(out / "labels.json", labels)
    write_json(out / "users.json", describe_org(plan))
    return labels


def run_summary(
    plan: Plan, record: RunRecord, files: tuple[Path, ...], seconds: float
) -> dict[str, Any]:
    """The keys of ``run.json`` every backend writes after its server's own."""
    return {
        "sessions": len(plan.sessions),
        "statements": plan.statements,
        "errors": [e.__dict__ for e in record.errors],
        "run_seconds": round(record.seconds, 2),
        "total_seconds": round(seconds, 2),
        "files": [p.name for p in files],
    }


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def describe_org(plan: Plan) -> dict[str, Any]:
    """The content of ``users.json``."""
    org: Organisation = plan.org
    roles = {}
    for name, h in HABITS.items():
        if not org.by_role(name):
            continue
        roles[name] = {
            "description": h.description,
            "application": h.application,
            **(
                {"scheduled_daily_at": _hhmm(h.at)}
                if h.at is not None
                else {
                    "session_windows": [f"{_hhmm(a)}-{_hhmm(b)}" for a, b in h.shifts],
                    "statements_per_workday": list(h.per_day),
                    "statements_per_session": list(h.per_session),
                    "seconds_between_statements": list(h.think_s),
                    "templates": dict(h.templates),
                    "weekend_share_for_duty_staff": h.weekend_factor,
                }
            ),
            "pgaudit_log_parameter": h.log_parameter,
        }
    scenario_ips = {sc.client_ip: sc.name for sc in plan.scenarios if sc.client_ip is not None}
    return {
        "period": {
            "start": org.start.isoformat(),
            "days": org.days,
            "end": org.day(org.days - 1).isoformat(),
            "timezone": "UTC",
            "busy_day": None if org.busy_day is None else org.day(org.busy_day).isoformat(),
        },
        "seed": org.seed,
        "citizens": org.citizens,
        "roles": roles,
        "users": [
            {
                "user": u.name,
                "role": u.role,
                "client_ip": u.client_ip,
                "binding": u.binding,
                "joins": org.day(u.joins_day).isoformat() if u.joins_day else None,
                "weekend_duty": u.weekend_duty,
            }
            for u in org.users
        ],
        # addresses only injected scenarios use (nobody's usual address)
        "scenario_client_ips": scenario_ips,
    }


def table_rows(plan: Plan) -> dict[str, int]:
    """Rows loaded into each table before the run."""
    data = plan.data
    return {
        "citizens": len(data.citizens),
        "travel_records": len(data.travel_rows()),
        "hotel_stays": len(data.hotel_rows()),
    }


def catalog_toml(plan: Plan, db: str) -> str:
    """The sensitivity catalog of the three tables, named as ``db``'s log names them."""
    prefix = TABLE_PREFIX[db]
    lines = [
        "# Sensitivity catalog of the simulated records office (detector.lab.simulation).",
        "# Row counts are those loaded before the run (the nightly loads add a few): they",
        "# size reads the log does not count (MariaDB counts none, pg_dump's COPY logs 0).",
        "",
        "[defaults]",
        f'{"postgres_schema" if db == "postgres" else "mysql_schema"} = "{prefix}"',
        "",
    ]
    for table, rows in table_rows(plan).items():
        name = f'[tables."{prefix}.{table}"]'
        cols = ", ".join(f'"{c}"' for c in COLUMNS[table])
        lines += [name, f"rows = {rows}", f"columns = [{cols}]"]
        if table == "citizens":
            lines.append(f'[tables."{prefix}.{table}".sensitive]')
            lines += [f'{col} = "{cls}"' for col, cls in CITIZEN_CLASSES.items()]
        else:
            lines.append("# a key of citizens.id, not an ID-card number")
            lines.append('sensitive = { citizen_id = "none" }')
        lines.append("")
    return "\n".join(lines)


def config_toml(plan: Plan, db: str) -> str:
    """Detector configuration for the run's log: format, catalog, every user's role."""
    lines = [
        "# Detector configuration of a simulated records office (detector.lab.simulation):",
        "# exfil-detector replay <run.json's replay files> --config config.toml",
        "",
        "[source]",
        f'format = "{SOURCE_FORMAT[db]}"',
    ]
    if db == "mariadb":
        lines.append('mariadb_timezone = "UTC"  # the simulated times are written in UTC')
    lines += [
        "",
        "[catalog]",
        'path = "catalog.toml"',
        "",
        "[peers]",
        f"service_roles = {json.dumps(list(SERVICE_ROLES))}",
        "[peers.users]",
        *(f"{u.name} = {json.dumps(u.role)}" for u in plan.org.users),
        "",
    ]
    return "\n".join(lines)


def write_detector_files(out: Path, plan: Plan, db: str) -> None:
    """``catalog.toml`` and ``config.toml`` for replaying ``out``."""
    (out / "catalog.toml").write_text(catalog_toml(plan, db), encoding="utf-8")
    (out / "config.toml").write_text(config_toml(plan, db), encoding="utf-8")

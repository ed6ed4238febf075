"""Plan -> real server -> time-warped logs, ``labels.json`` and ``users.json`` in one call.

Output directory::

    postgresql-<first simulated time>.csv / .json / .log   the server's logs, simulated times
    labels.json     one object per (scenario, user): scenario, kind, user, start, end (ISO
                    8601 UTC), negative, variant, description
    users.json      the organisation: period, roles and habits, users, client addresses
    run.json        server versions and settings, counts, errors, real run time
    timeline.json   real step spans -> simulated starts (re-warp or debug with it)
    raw/            the logs as the server wrote them (``keep_raw``)
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import timewarp
from .database import SIM_SETTINGS, setup_database
from .forwarder import Forwarders
from .org import HABITS, Organisation
from .pg_server import DBNAME, LogFiles, quiesce, rotate_logs, start_cluster
from .plan import Plan
from .runner import RunRecord, connector, run_plan
from .sessions import from_ms

#: settings that name the temp dir or port of one run
TEMP_SETTINGS = frozenset({"log_directory", "unix_socket_directories", "port"})


@dataclass(frozen=True)
class SimulationResult:
    """Where everything went, and what the run did."""

    out: Path
    logs: LogFiles
    raw: LogFiles | None
    labels: list[dict[str, Any]]
    record: RunRecord
    server_version: str
    pgaudit_version: str
    seconds: float

    @property
    def csv(self) -> Path:
        return self.logs.csv


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


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def simulate(
    plan: Plan,
    out: Path,
    *,
    keep_raw: bool = False,
    progress: Callable[[str], None] | None = None,
) -> SimulationResult:
    """Start a throwaway server, run ``plan``, write the outputs into ``out``.

    Parameters
    ----------
    plan
        What to run (:func:`.plan.build_plan`).
    out
        Output directory (created; earlier ``postgresql-*`` files in it are removed).
    keep_raw
        Also copy the logs as the server wrote them into ``out/raw``.
    progress
        Called with one-line progress messages.

    Returns
    -------
    SimulationResult
        Paths of the warped (and raw) logs, the labels as run, the run record.

    Examples
    --------
    Needs PostgreSQL 15 + pgaudit (``scripts/services/postgres.sh``)::

        org = build_org(users=6, days=2, citizens=2000)
        result = simulate(build_plan(org, default_scenarios(org, 0.05)), Path("sim"))
    """
    say = progress or (lambda _msg: None)
    started = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("postgresql-*"):
        old.unlink()
    cluster = start_cluster(SIM_SETTINGS)
    try:
        server, pgaudit = setup_database(cluster, plan)
        say(f"PostgreSQL {server}, pgaudit {pgaudit}; {len(plan.data.citizens)} citizens loaded")
        with cluster.connect("harness") as ctl:
            files = rotate_logs(ctl)
            with Forwarders(("127.0.0.1", cluster.port), plan.client_ips()) as fw:
                record = run_plan(
                    plan,
                    connector(fw.address, DBNAME),
                    lambda n, total: say(f"step {n}/{total}"),
                )
            quiesce(ctl)
            rotate_logs(ctl)
        cluster.stop()
        say(f"ran {plan.statements} statements in {len(plan.sessions)} sessions"
            f" in {record.seconds:.1f} s; {len(record.errors)} errors")  # fmt: skip
        first = min(
            (t for f in files.all() if (t := timewarp.first_time(f)) is not None), default=None
        )
        stamp = from_ms(record.timeline.to_sim(first) if first else 0).strftime("%Y-%m-%d_%H%M%S")
        warped = LogFiles(*(out / f"postgresql-{stamp}{f.suffix}" for f in files.all()))
        for src, dest in zip(files.all(), warped.all(), strict=True):
            timewarp.warp_file(src, dest, record.timeline)
        raw = None
        if keep_raw:
            (out / "raw").mkdir(exist_ok=True)
            raw = LogFiles(*(out / "raw" / f.name for f in files.all()))
            for src, dest in zip(files.all(), raw.all(), strict=True):
                shutil.copyfile(src, dest)
    finally:
        cluster.cleanup()
    labels = plan.labels(record.spans)
    _write_json(out / "labels.json", labels)
    _write_json(out / "users.json", describe_org(plan))
    _write_json(out / "timeline.json", record.timeline.to_json())
    seconds = time.monotonic() - started
    _write_json(
        out / "run.json",
        {
            "server_version": server,
            "pgaudit_version": pgaudit,
            "settings": {k: v.strip("'") for k, v in cluster.settings.items()
                         if k not in TEMP_SETTINGS},
            "sessions": len(plan.sessions),
            "statements": plan.statements,
            "errors": [e.__dict__ for e in record.errors],
            "run_seconds": round(record.seconds, 2),
            "total_seconds": round(seconds, 2),
            "files": [p.name for p in warped.all()],
        },
    )  # fmt: skip
    return SimulationResult(out, warped, raw, labels, record, server, pgaudit, seconds)

"""A forged ``RAISE LOG 'AUDIT: ...'`` on a real server is rejected in every format.

An insider who can run PL/pgSQL could write fake audit records (to frame a colleague or
bury their own reads). Real pgaudit records hide their CONTEXT; a RAISE from PL/pgSQL
carries one, which is how the parsers tell them apart.
"""

from __future__ import annotations

import polars as pl
import pytest

from detector.commands.parse import parse_files
from detector.config import Config

FORGED = "AUDIT: SESSION,1,1,READ,SELECT,TABLE,public.citizens,SELECT * FROM citizens,<none>,999999"


@pytest.mark.postgres
def test_forged_audit_lines_are_dead_lettered() -> None:
    from realdb.postgres import PgNotInstalledError, find_bindir, start_cluster, wait_files_stable

    try:
        find_bindir()
    except PgNotInstalledError as exc:
        pytest.fail(str(exc), pytrace=False)
    settings = {
        "shared_preload_libraries": "'pgaudit'",
        "logging_collector": "on",
        "log_destination": "'stderr,csvlog,jsonlog'",
        "log_line_prefix": "'%m [%p] %q%u@%d '",
        "log_timezone": "'UTC'",
        "pgaudit.log": "'read, function'",
        "pgaudit.log_rows": "on",
    }
    with start_cluster(settings) as cluster:
        with cluster.connect("postgres", dbname="postgres") as conn:
            conn.execute("CREATE EXTENSION pgaudit")
            conn.execute(f"DO $$ BEGIN RAISE LOG '{FORGED}'; END $$")
            conn.execute("SELECT 42")
        logs = sorted(cluster.logdir.iterdir())
        cluster.stop()
        wait_files_stable(logs)
        by_suffix = {p.suffix: p for p in logs}
        for suffix in (".log", ".csv", ".json"):
            events, summary = parse_files([by_suffix[suffix]], Config(), out=None, dead_letter=None)
            assert summary.rejects == {"forged_audit": 1}, (suffix, summary.rejects)
            audited = events.filter(pl.col("audit_type").is_not_null())
            assert 999999 not in audited["rows"].to_list()
            assert "SELECT 42" in audited["statement"].to_list()

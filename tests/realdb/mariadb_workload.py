"""A small records-office workload run against the real MariaDB of :mod:`.mariadb`.

It produces the audit lines the detector must understand: whole-table reads, one-row lookups
by national ID, joins, paging, aggregates, writes, quoting and escaping, multi-line text, a
failing statement, a failed login and an ``INTO OUTFILE`` export. Every row is fake: names
are drawn from lists, ID numbers are random but carry a valid GB 11643 check digit.

Run ``python tests/realdb/mariadb_workload.py OUT.log`` (as root) to write a fresh audit
log to ``OUT.log``; that is how ``tests/data/real/mariadb/server_audit.log`` was made.

Examples
--------
>>> check_digit("11010519491231002")
'X'
>>> fake_citizens(2)[0][1][-1] == check_digit(fake_citizens(2)[0][1][:17])
True
"""

from __future__ import annotations

import random
import shutil
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pymysql

from features.national_id import check_char

if __package__:
    from .mariadb import MariaDBServer
else:  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from mariadb import MariaDBServer  # type: ignore[no-redef]

_SURNAMES = ("Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Zhao", "Huang", "Zhou", "Wu")
_GIVEN = ("Wei", "Fang", "Na", "Min", "Jing", "Lei", "Qiang", "Yan", "Jun", "Xiu Ying")
_REGIONS = ("110101", "310104", "440305", "320102", "510107", "330106")
_STREETS = ("Renmin Rd", "Jiefang Ave", "Zhongshan Rd", "Huaihai Rd", "Binjiang Blvd")
_DESTINATIONS = ("Hong Kong", "Singapore", "Tokyo", "Bangkok", "Paris", "Sydney")

CITIZENS_DDL = """CREATE TABLE records.citizens (
    id INT PRIMARY KEY AUTO_INCREMENT,
    national_id CHAR(18) NOT NULL UNIQUE,
    full_name VARCHAR(64) NOT NULL,
    phone VARCHAR(20),
    address VARCHAR(128),
    birth_date DATE
)"""
TRAVEL_DDL = """CREATE TABLE records.travel_records (
    id INT PRIMARY KEY AUTO_INCREMENT,
    citizen_id INT NOT NULL,
    destination VARCHAR(64) NOT NULL,
    depart_date DATE NOT NULL,
    KEY (citizen_id)
)"""


def check_digit(first17: str) -> str:
    """GB 11643-1999 check character of the first 17 digits of a PRC ID number."""
    return check_char(first17)


def fake_citizens(n: int, seed: int = 11643) -> list[tuple[Any, ...]]:
    """``n`` fake rows ``(id, national_id, full_name, phone, address, birth_date)``."""
    rng = random.Random(seed)
    rows = []
    for i in range(1, n + 1):
        birth = date(1950, 1, 1) + timedelta(days=rng.randrange(365 * 55))
        first17 = f"{rng.choice(_REGIONS)}{birth:%Y%m%d}{rng.randrange(1000):03d}"
        name = f"{rng.choice(_SURNAMES)} {rng.choice(_GIVEN)}"
        phone = f"13{rng.randrange(10**9):09d}"
        address = f"{rng.randrange(1, 999)} {rng.choice(_STREETS)}"
        rows.append((i, first17 + check_digit(first17), name, phone, address, birth))
    return rows


def _setup(server: MariaDBServer) -> None:
    with server.admin() as conn, conn.cursor() as cur:
        cur.execute("CREATE DATABASE records")
        cur.execute(CITIZENS_DDL)
        cur.execute(TRAVEL_DDL)
        for user, pw in (("officer1", "officer1-pw"), ("analyst1", "analyst1-pw"),
                         ("etl_batch", "etl-pw")):  # fmt: skip
            cur.execute(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{pw}'")
        cur.execute("GRANT SELECT ON records.* TO 'officer1'@'127.0.0.1'")
        cur.execute("GRANT SELECT ON records.* TO 'analyst1'@'127.0.0.1'")
        # FILE is global-only; it is what lets analyst1 write INTO OUTFILE (secure_file_priv).
        cur.execute("GRANT FILE ON *.* TO 'analyst1'@'127.0.0.1'")
        cur.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON records.* TO 'etl_batch'@'127.0.0.1'")


def run_workload(server: MariaDBServer, n_citizens: int = 100) -> dict[str, Any]:
    """Create the schema and users, then run each account's statements over TCP.

    Returns facts the tests check against the parsed log (IDs looked up, outfile path).
    """
    citizens = fake_citizens(n_citizens)
    _setup(server)
    outfile = server.outfile_dir / "citizens_export.csv"

    with server.connect("etl_batch", database="records") as conn, conn.cursor() as cur:
        cur.executemany(  # PyMySQL folds this into one multi-row INSERT statement
            "INSERT INTO citizens (id, national_id, full_name, phone, address, birth_date)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            citizens,
        )
        for c in citizens[:30]:
            cur.execute(
                "INSERT INTO travel_records (citizen_id, destination, depart_date)"
                " VALUES (%s, %s, %s)",
                (c[0], _DESTINATIONS[c[0] % len(_DESTINATIONS)], date(2024, 1 + c[0] % 12, 5)),
            )
        first17 = "11010119800101123"
        cur.execute(
            "INSERT INTO citizens (national_id, full_name, phone, address, birth_date)"
            " VALUES (%s, %s, %s, %s, %s)",
            (first17 + check_digit(first17), "O'Brien Sean", "13800000000",
             "It's Lane 5\tC:\\archive", date(1980, 1, 1)),
        )  # fmt: skip
        cur.execute("UPDATE citizens SET phone = '13900000001' WHERE id = 7")

    lookups = [c[1] for c in citizens[10:15]]
    with server.connect("officer1", database="records") as conn, conn.cursor() as cur:
        for nid in lookups:
            cur.execute(f"SELECT * FROM citizens WHERE national_id = '{nid}'")
        cur.execute(
            "SELECT c.full_name, t.destination, t.depart_date FROM citizens c"
            f" JOIN travel_records t ON t.citizen_id = c.id WHERE c.national_id = '{lookups[0]}'"
        )
        cur.execute("SELECT id, phone FROM citizens WHERE full_name = 'O\\'Brien Sean'")
        cur.execute(
            "SELECT id FROM citizens WHERE address = 'It''s Lane 5' OR full_name = \"It''s\""
        )
        try:
            cur.execute("SELECT * FROM passports WHERE id = 1")
        except pymysql.err.ProgrammingError as exc:  # missing table: error 1146, logged
            missing_table_error = exc.args[0]

    with server.connect("analyst1", database="records") as conn, conn.cursor() as cur:
        cur.execute("SELECT * FROM citizens")
        for offset in (0, 20, 40):
            cur.execute(f"SELECT * FROM citizens ORDER BY id LIMIT 20 OFFSET {offset}")
        cur.execute(
            "SELECT LEFT(national_id, 6) AS region,\n\tCOUNT(*) AS n\nFROM citizens\n"
            "GROUP BY LEFT(national_id, 6)\nORDER BY n DESC"
        )
        cur.execute(
            "SELECT national_id, full_name, phone FROM citizens"
            f" INTO OUTFILE '{outfile}' FIELDS TERMINATED BY ','"
        )

    try:  # wrong password: FAILED_CONNECT with error 1045
        server.connect("officer1", password="wrong-password").close()
    except pymysql.err.OperationalError as exc:
        failed_login = str(exc)
    else:
        raise AssertionError("login with a wrong password succeeded")

    return {
        "lookups": lookups,
        "outfile": str(outfile),
        "failed_login": failed_login,
        "missing_table_error": missing_table_error,
        "citizens": len(citizens) + 1,
    }


def main(argv: list[str]) -> int:
    """Start a server, run the workload, stop, and copy the audit log to ``argv[0]``."""
    if len(argv) != 1:
        print("usage: mariadb_workload.py OUT.log", file=sys.stderr)
        return 2
    with MariaDBServer() as server:
        run_workload(server)
        server.stop()
        shutil.copyfile(server.audit_log, argv[0])
        print(f"{server.version}: {argv[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

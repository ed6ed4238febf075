"""A seeded records-office simulator that drives a real PostgreSQL 15 + pgaudit or MariaDB.

The organisation (:mod:`.org`) and the injected scenarios (:mod:`.scenarios`) become a
deterministic plan of sessions and statements at simulated times (:mod:`.plan`); the runner
(:mod:`.runner`) executes it as fast as possible against a throwaway server
(:mod:`.pg_server`), from per-user client addresses (:mod:`.forwarder`), recording the real
time span of every step; afterwards :mod:`.timewarp` gives every log line its simulated
time, leaving all other bytes as the server wrote them.  :mod:`.simulate` ties it together;
``exfil-detector simulate --help`` (or ``python -m detector.lab.simulation``) is its command line.

The same plan runs on MariaDB + server_audit (``db="mariadb"``): :mod:`.mysql_dialect`
translates each statement when it is sent, :mod:`.mariadb_runner` waits for each step's
audit lines, :mod:`.mariadb_server` starts throwaway servers, :mod:`.mariadb_database` sets
up the office and :mod:`.mariadb_sim` ties it together.  Either backend can also use a
running local server given by a DSN (:mod:`.pg_dsn` for PostgreSQL).
"""

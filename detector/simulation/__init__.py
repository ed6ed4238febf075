"""A seeded records-office simulator that drives a real PostgreSQL 15 + pgaudit.

The organisation (:mod:`.org`) and the injected scenarios (:mod:`.scenarios`) become a
deterministic plan of sessions and statements at simulated times (:mod:`.plan`); the runner
(:mod:`.runner`) executes it as fast as possible against a throwaway server
(:mod:`.pg_server`), from per-user client addresses (:mod:`.forwarder`), recording the real
time span of every step; afterwards :mod:`.timewarp` gives every log line its simulated
time, leaving all other bytes as the server wrote them.  :mod:`.simulate` ties it together;
``python -m detector.simulation --help`` is its command line.
"""

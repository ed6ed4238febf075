"""Helpers that drive real database servers to produce real audit logs for the tests.

- ``realdb.postgres``: a throwaway PostgreSQL 15 + pgaudit cluster in a temp dir.
- ``realdb.pg_workload``: the records-office workload run against it, phase by phase.
"""

"""The SQL-analysis layer: canonical events in, "which tables, which columns, how sensitive,
how much" out.

Entry point: :func:`features.enrich.enrich`. Building blocks:

- :mod:`features.fingerprint`: literal-free statement shapes, vectorised.
- :mod:`features.national_id`: PRC resident ID numbers found and reduced to keyed hashes;
  statement redaction for evidence.
- :mod:`features.catalog` and :mod:`features.column_classes`: the TOML sensitivity
  catalog and the column-name heuristics.
- :mod:`features.sql_analysis`: one statement analysed with sqlglot (cold path, cached),
  with :mod:`features.sql_lineage`, :mod:`features.statement_tree` and
  :mod:`features.sql_rules` behind it.
- :mod:`features.analysis_table` and :mod:`features.row_values`: the per-fingerprint
  table and the per-event values/row estimates that :func:`~features.enrich.enrich` joins.
"""

"""First-seen marks: a table, query template, client IP or sensitive class new to a user.

:class:`SeenSets` remembers, per user, every table read, template run, client address
used and sensitive class read (non-aggregated). :meth:`SeenSets.mark` adds per-event
counts of the items seen for the first time *for that user*, in log order, then
remembers them. Marks depend only on the order of events, not on how they were cut into
micro-batches.

Memory is one 64-bit key per (user, item): hashes of ``kind, user, item`` in a few sorted
arrays ``runs_`` (a new run per batch, runs of similar size merged). A collision (two
pairs with one hash, about n²/2⁶⁵) can only hide a first sighting, never invent one.
Hashes come from polars' ``hash`` with a fixed seed, which is stable for a given polars
version: saved state records the version.

>>> import datetime as dt
>>> t = dt.datetime(2024, 3, 4, 9, tzinfo=dt.UTC)
>>> ev = pl.DataFrame({
...     "user": ["d07", "d07", "d08"], "client_ip": ["10.0.0.7", "10.0.0.9", "10.0.0.7"],
...     "fingerprint_id": [1, 1, 1], "tables_read": [["public.citizens"]] * 3,
...     "classes": [["phone"], ["phone", "name"], []],
... }, schema_overrides={"fingerprint_id": pl.UInt64})
>>> seen = SeenSets()
>>> seen.mark(ev).select("new_tables", "new_templates", "new_ips", "new_classes").rows()
[(1.0, 1.0, 1.0, ['phone']), (0.0, 0.0, 1.0, ['name']), (1.0, 1.0, 1.0, [])]
>>> seen.mark(ev)["new_ips"].to_list()
[0.0, 0.0, 0.0]
"""

from __future__ import annotations

from typing import Final

import numpy as np
import polars as pl

#: Columns :meth:`SeenSets.mark` adds.
NOVELTY_COLUMNS: Final = ("new_tables", "new_templates", "new_ips", "new_classes")

_SEED: Final = 0x5EED_0F_F1257


def _key(kind: str, item: pl.Expr) -> pl.Expr:
    return (
        pl.concat_str([pl.lit(kind), pl.col("user"), item.cast(pl.String)], separator="\x1f")
        .hash(_SEED)
        .alias("key")
    )


class SeenSets:
    """Per-user sets of tables, templates, client IPs and sensitive classes already seen."""

    def __init__(self) -> None:
        pass

    def _is_new(self, keys: np.ndarray) -> np.ndarray:
        """Which of these (distinct) keys none of the remembered runs holds."""
        new = np.ones(keys.size, dtype=bool)
        for run in getattr(self, "runs_", ()):
            pos = np.minimum(np.searchsorted(run, keys), run.size - 1)
            new &= run[pos] != keys
        return new

    def _remember(self, new_keys: list[np.ndarray]) -> None:
        """Add the batch's new keys as a sorted run; merge runs of similar size, so a
        batch costs O(its keys · log) amortised, not a re-sort of everything seen."""
        runs: list[np.ndarray] = getattr(self, "runs_", [])
        fresh = np.unique(np.concatenate([np.empty(0, np.uint64), *new_keys]))
        if fresh.size:
            runs.append(fresh)
        while len(runs) > 1 and runs[-2].size <= 2 * runs[-1].size:
            last = runs.pop()
            runs[-1] = np.union1d(runs[-1], last)
        self.runs_ = runs

    def mark(self, events: pl.DataFrame) -> pl.DataFrame:
        """``events`` with :data:`NOVELTY_COLUMNS` appended; then remember every item."""
        n = events.height
        base = events.select("user", "client_ip", "fingerprint_id", "tables_read", "classes")
        base = base.with_row_index("_row")
        seen_keys: list[np.ndarray] = []

        def first_sightings(kind: str, pairs: pl.DataFrame) -> pl.DataFrame:
            """(row, item) of the first row of each (user, item) pair new to the user.

            Hashes only the batch's distinct pairs: a user repeats the same tables,
            templates and address thousands of times."""
            first = pairs.unique(["user", "item"], keep="first", maintain_order=True)
            keys = first.select(_key(kind, pl.col("item")))["key"].to_numpy()
            new = self._is_new(keys)
            seen_keys.append(keys[new])
            return first.filter(pl.Series(new)).select("_row", "item")

        def scalar(kind: str, col: str) -> np.ndarray:
            pairs = base.select("_row", "user", pl.col(col).alias("item"))
            new = first_sightings(kind, pairs)
            return np.bincount(new["_row"].to_numpy(), minlength=n).astype(np.float64)

        def listed(kind: str, col: str) -> tuple[np.ndarray, pl.DataFrame]:
            pairs = (
                base.select("_row", "user", pl.col(col).alias("item"))
                .explode("item")
                .drop_nulls("item")
            )
            new = first_sightings(kind, pairs)
            counts = np.bincount(new["_row"].to_numpy(), minlength=n).astype(np.float64)
            return counts, new

        new_templates = scalar("template", "fingerprint_id")
        new_ips = scalar("ip", "client_ip")
        new_tables, _ = listed("table", "tables_read")
        _, new_class_rows = listed("class", "classes")
        self._remember(seen_keys)
        classes = (
            pl.DataFrame({"_row": np.arange(n, dtype=np.uint32)})
            .join(
                new_class_rows.group_by("_row").agg(pl.col("item").alias("new_classes")),
                on="_row",
                how="left",
                maintain_order="left",
            )
            .select(pl.col("new_classes").fill_null(pl.lit([], dtype=pl.List(pl.String))))
        )
        return events.with_columns(
            new_tables=pl.Series(new_tables),
            new_templates=pl.Series(new_templates),
            new_ips=pl.Series(new_ips),
            new_classes=classes["new_classes"],
        )

    def __len__(self) -> int:
        """Number of (user, item) pairs remembered."""
        return sum(run.size for run in getattr(self, "runs_", ()))

    @property
    def nbytes(self) -> int:
        """Bytes of remembered keys."""
        return sum(run.nbytes for run in getattr(self, "runs_", ()))

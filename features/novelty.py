"""First-seen marks: a table, query template, client IP or sensitive class new to a user.

:class:`SeenSets` remembers, per user, every table read, template run, client address
used and sensitive class read (non-aggregated). :meth:`SeenSets.mark` adds per-event
counts of the items seen for the first time *for that user*, in log order, then
remembers them. Marks depend only on the order of events, not on how they were cut into
micro-batches.

Memory is one 64-bit key per (user, item): the sorted array ``keys_`` of hashes of
``kind, user, item``. A collision (two pairs with one hash, about n²/2⁶⁵) can only hide
a first sighting, never invent one. Hashes come from polars' ``hash`` with a fixed seed,
which is stable for a given polars version: saved state records the version.

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

    def _is_new(self, keys: pl.Series) -> np.ndarray:
        """New = first occurrence in this batch and not in ``keys_``."""
        first = keys.is_first_distinct().to_numpy()
        values = keys.to_numpy()
        known = getattr(self, "keys_", np.empty(0, dtype=np.uint64))
        if len(known):
            pos = np.searchsorted(known, values)
            hit = known[np.minimum(pos, len(known) - 1)] == values
            return first & ~hit
        return first

    def _remember(self, keys: list[np.ndarray]) -> None:
        known = getattr(self, "keys_", np.empty(0, dtype=np.uint64))
        self.keys_ = np.union1d(known, np.concatenate([known[:0], *keys]))

    def mark(self, events: pl.DataFrame) -> pl.DataFrame:
        """``events`` with :data:`NOVELTY_COLUMNS` appended; then remember every item."""
        n = events.height
        base = events.select("user", "client_ip", "fingerprint_id", "tables_read", "classes")
        base = base.with_row_index("_row")
        seen_keys: list[np.ndarray] = []

        def scalar(kind: str, col: str) -> np.ndarray:
            keys = base.select(_key(kind, pl.col(col)))["key"]
            seen_keys.append(keys.to_numpy())
            return self._is_new(keys).astype(np.float64)

        def listed(kind: str, col: str) -> tuple[np.ndarray, pl.DataFrame]:
            flat = (
                base.select("_row", "user", pl.col(col).alias("item"))
                .explode("item")
                .drop_nulls("item")
                .with_columns(_key(kind, pl.col("item")))
            )
            keys = flat["key"]
            seen_keys.append(keys.to_numpy())
            new = flat.filter(pl.Series(self._is_new(keys)))
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
        return len(getattr(self, "keys_", ()))

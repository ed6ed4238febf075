"""Per-entity model state stays small: <= 1 KB per entity per scale at 100k entities."""

from __future__ import annotations

import numpy as np
import pytest

from models import Cusum, HourProfile, RobustBaseline

N = 100_000
BUDGET = 1024


def _per_entity_bytes(chunk: int) -> float:
    """Learn N entities in chunks of ``chunk`` new ones (growth by doubling) and measure."""
    base, hours, cusum = RobustBaseline(n_features=12), HourProfile(), Cusum(n_features=1)
    rng = np.random.default_rng(0)
    for start in range(0, N, chunk):
        idx = np.arange(start, min(start + chunk, N))
        base.learn_many(idx, rng.lognormal(2, 1, (idx.size, 12)))
        hours.learn_many(idx, rng.integers(0, 24, idx.size))
        cusum.learn_many(idx, rng.normal(0, 1, (idx.size, 1)))
    arrays = [base.center_, base.spread_, base.count_, base.max_, hours.counts_, cusum.S_]
    for a in arrays:
        assert a.dtype in (np.float32, np.int32)
    total = sum(a.nbytes for a in arrays)
    assert total == base.nbytes + hours.nbytes + cusum.nbytes
    return total / N


@pytest.mark.parametrize("chunk", [N, 7_000], ids=["all-at-once", "growing"])
def test_state_per_entity_per_scale(chunk: int) -> None:
    per_entity = _per_entity_bytes(chunk)
    assert per_entity <= BUDGET, (
        f"{per_entity:.0f} bytes of state per entity per scale (budget {BUDGET})"
    )
    print(f"\nper-entity state ({chunk=}): {per_entity:.0f} bytes per scale")

"""Per-entity state in numpy arrays indexed by an integer entity index.

The models track up to ~10^5 users (and peer groups) each, so their state is a few
float32 arrays whose row ``i`` belongs to entity ``i``, never a Python object per user.
The caller maps user names to dense indices once; the arrays grow by doubling when a
larger index appears, so growth is amortised O(1) per entity and the slack stays < 2x.

Models whose update is sequential per entity (an exponentially weighted mean) accept each
entity at most once per call; :func:`distinct_rounds` splits a batch in which entities
repeat into rounds that keep each entity's rows in order.

>>> idx = np.array([4, 1, 4, 4, 2])
>>> [r.tolist() for r in distinct_rounds(idx)]
[[0, 1, 4], [2], [3]]
"""

from __future__ import annotations

import numpy as np

#: Smallest allocation, so tiny tests do not reallocate at every new entity.
_MIN_ROWS = 8


def as_index(idx: np.ndarray, *, distinct: bool) -> np.ndarray:
    """Validate entity indices: 1-D, integer, >= 0 (and distinct when asked).

    Parameters
    ----------
    idx
        Entity indices, any integer dtype.
    distinct
        Raise when an index repeats.

    Returns
    -------
    numpy.ndarray
        ``idx`` as ``intp`` (a new array only when a cast was needed; never written to).

    Raises
    ------
    ValueError
        When the indices are not a 1-D integer array of non-negative, (distinct) values.

    Examples
    --------
    >>> as_index(np.array([3, 0]), distinct=True).tolist()
    [3, 0]
    >>> as_index(np.array([3, 3]), distinct=True)
    Traceback (most recent call last):
    ...
    ValueError: entity indices must be distinct within one call (see distinct_rounds)
    """
    arr = np.asarray(idx)
    if arr.ndim != 1 or not (arr.dtype.kind in "iu" or arr.size == 0):
        raise ValueError(f"entity indices must be a 1-D integer array, got {arr.dtype}{arr.shape}")
    arr = arr.astype(np.intp, copy=False)
    if arr.size and int(arr.min()) < 0:
        raise ValueError("entity indices must be >= 0")
    if distinct and arr.size > 1:
        s = np.sort(arr)
        if bool((s[1:] == s[:-1]).any()):
            raise ValueError(
                "entity indices must be distinct within one call (see distinct_rounds)"
            )
    return arr


def grown(arr: np.ndarray | None, needed: int, row_shape: tuple[int, ...], fill: float, dtype):
    """Return ``arr`` with at least ``needed`` rows, new rows set to ``fill``.

    The first allocation is exact (a replay that knows its users up front wastes nothing);
    later growth doubles, so repeated growth by one entity stays amortised O(1).

    Examples
    --------
    >>> a = grown(None, 3, (2,), 0.0, np.float32)
    >>> a.shape, grown(a, 9, (2,), 0.0, np.float32).shape
    ((8, 2), (16, 2))
    """
    have = 0 if arr is None else arr.shape[0]
    if arr is not None and needed <= have:
        return arr
    rows = max(needed, _MIN_ROWS) if have == 0 else max(needed, 2 * have)
    out = np.full((rows, *row_shape), fill, dtype=dtype)
    if arr is not None:
        out[:have] = arr
    return out


def gather(arr: np.ndarray | None, idx: np.ndarray, fill: float) -> np.ndarray:
    """Rows ``arr[idx]`` (a copy), with ``fill`` for entities beyond the allocated rows.

    Examples
    --------
    >>> gather(np.array([1.0, 2.0]), np.array([1, 5]), -1.0).tolist()
    [2.0, -1.0]
    """
    if arr is None:
        raise ValueError("no state allocated")
    known = idx < arr.shape[0]
    if bool(known.all()):
        return arr[idx]
    out = np.full((idx.size, *arr.shape[1:]), fill, dtype=arr.dtype)
    out[known] = arr[idx[known]]
    return out


def occurrence_rank(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row, how many earlier rows have the same entity; and that entity's row count.

    Examples
    --------
    >>> rank, count = occurrence_rank(np.array([4, 1, 4, 4]))
    >>> rank.tolist(), count.tolist()
    ([0, 0, 1, 2], [3, 1, 3, 3])
    """
    n = idx.size
    order = np.argsort(idx, kind="stable")
    s = idx[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]]) if n else np.empty(0, np.intp)
    sizes = np.diff(np.r_[starts, n])
    group_start = np.repeat(starts, sizes)
    rank = np.empty(n, dtype=np.intp)
    rank[order] = np.arange(n) - group_start
    count = np.empty(n, dtype=np.intp)
    count[order] = np.repeat(sizes, sizes)
    return rank, count


def distinct_rounds(idx: np.ndarray) -> list[np.ndarray]:
    """Split rows into rounds where each entity appears at most once, keeping row order.

    Round ``k`` holds every entity's ``k``-th row (positions into ``idx``, ascending), so
    learning round after round replays each entity's rows in their original order.

    Parameters
    ----------
    idx
        Entity index of each row (repeats allowed).

    Returns
    -------
    list of numpy.ndarray
        Row positions of each round; as many rounds as the most frequent entity has rows.

    Examples
    --------
    >>> [r.tolist() for r in distinct_rounds(np.array([7, 7, 3]))]
    [[0, 2], [1]]
    """
    arr = as_index(idx, distinct=False)
    if arr.size == 0:
        return []
    rank, _ = occurrence_rank(arr)
    order = np.argsort(rank, kind="stable")
    bounds = np.flatnonzero(np.diff(rank[order])) + 1
    return np.split(order, bounds)


#: One entity's rows of a model, by array name (``None``: the model has no such array yet).
EntityRows = dict[str, np.ndarray | None]


def take_rows(model: object, fills: dict[str, float], idx: np.ndarray) -> EntityRows:
    """Copies of rows ``idx`` of each per-entity array of ``model`` (named in ``fills``,
    with the value of a row never learned): one entity set moving to another process.

    Examples
    --------
    >>> class M: pass
    >>> m = M(); m.a_ = np.array([1.0, 2.0])
    >>> take_rows(m, {"a_": 0.0, "b_": 0.0}, np.array([1, 7]))
    {'a_': array([2., 0.]), 'b_': None}
    """
    idx = as_index(idx, distinct=True)
    out: EntityRows = {}
    for name, fill in fills.items():
        arr = getattr(model, name, None)
        out[name] = None if arr is None else gather(arr, idx, fill)
    return out


def put_rows(model: object, fills: dict[str, float], idx: np.ndarray, rows: EntityRows) -> None:
    """Set rows ``idx`` of each per-entity array of ``model`` to ``rows`` (from
    :func:`take_rows`); an array the rows lack is reset to its fill for ``idx``.

    Examples
    --------
    >>> class M: pass
    >>> m = M(); m.a_ = np.array([1.0, 2.0])
    >>> put_rows(m, {"a_": 0.0}, np.array([3, 0]), {"a_": np.array([5.0, 6.0])})
    >>> m.a_.tolist()
    [6.0, 2.0, 0.0, 5.0]
    """
    idx = as_index(idx, distinct=True)
    if idx.size == 0:
        return
    for name, fill in fills.items():
        values, arr = rows.get(name), getattr(model, name, None)
        if values is None:
            if arr is not None:
                arr[idx[idx < arr.shape[0]]] = fill
            continue
        arr = grown(arr, int(idx.max()) + 1, values.shape[1:], fill, values.dtype)
        arr[idx] = values
        setattr(model, name, arr)

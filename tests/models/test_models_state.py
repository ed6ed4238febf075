"""save_state / load_state: header checks, atomic private writes, errors chained."""

from __future__ import annotations

import os
import pickle
import stat
from pathlib import Path

import numpy as np
import pytest
import river

from models import Cusum, RobustBaseline, StateError, load_state, save_state
from models.state import MAGIC, read_header


def _model() -> RobustBaseline:
    m = RobustBaseline(n_features=2)
    m.learn_many(np.arange(3), np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))
    return m


def test_round_trip_continues_learning(tmp_path: Path) -> None:
    path = tmp_path / "state.bin"
    m = _model()
    save_state(path, {"baseline": m, "cusum": Cusum(n_features=1)}, kind="detector", version=3)
    got = load_state(path, kind="detector", version=3)
    np.testing.assert_array_equal(got["baseline"].center_, m.center_)
    header = read_header(path)
    assert header["kind"] == "detector" and header["version"] == 3
    assert header["river"] == river.__version__ and "numpy" in header and "polars" in header


def test_file_is_private_and_no_temp_file_is_left(tmp_path: Path) -> None:
    path = tmp_path / "state.bin"
    save_state(path, _model(), kind="k", version=1)
    save_state(path, _model(), kind="k", version=1)  # replace an existing file
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["state.bin"]


@pytest.mark.parametrize(
    ("kind", "version", "message"),
    [("other", 1, "holds 'k' state, expected 'other'"), ("k", 2, "is version 1 of 'k'")],
)
def test_kind_or_version_mismatch(tmp_path: Path, kind: str, version: int, message: str) -> None:
    path = tmp_path / "state.bin"
    save_state(path, _model(), kind="k", version=1)
    with pytest.raises(StateError, match=message):
        load_state(path, kind=kind, version=version)


def test_other_river_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "state.bin"
    monkeypatch.setattr(river, "__version__", "0.0.1")
    save_state(path, _model(), kind="k", version=1)
    monkeypatch.undo()
    with pytest.raises(StateError, match=r"written with river 0\.0\.1"):
        load_state(path, kind="k", version=1)


def test_not_a_state_file(tmp_path: Path) -> None:
    path = tmp_path / "state.bin"
    path.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(StateError, match="not an exfil-detector state file"):
        load_state(path, kind="k", version=1)


def test_damaged_payload_is_chained(tmp_path: Path) -> None:
    path = tmp_path / "state.bin"
    save_state(path, _model(), kind="k", version=1)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])
    with pytest.raises(StateError, match="cannot unpickle") as info:
        load_state(path, kind="k", version=1)
    assert info.value.__cause__ is not None
    assert data.startswith(MAGIC)


def test_missing_file_and_unpicklable_object(tmp_path: Path) -> None:
    with pytest.raises(StateError, match="cannot read") as info:
        load_state(tmp_path / "absent.bin", kind="k", version=1)
    assert isinstance(info.value.__cause__, FileNotFoundError)
    with pytest.raises(StateError, match="cannot pickle"):
        save_state(tmp_path / "x.bin", lambda: 0, kind="k", version=1)
    assert list(tmp_path.iterdir()) == []

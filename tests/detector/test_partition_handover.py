"""A partition's users moving between detector processes (Kafka rebalances), in memory.

The bundled sample's users are spread over three partitions by a hash of their name, as a
keyed topic would. One process judging the three partitions must raise replay's alerts;
handing partitions over mid-stream (state taken out, pickled, taken in by a fresh
process) must not change them.
"""

from __future__ import annotations

import datetime as dt
import pickle
import zlib
from collections.abc import Iterator

import polars as pl
import pytest

from detector.config import Config, load_config
from detector.pipeline import Pipeline
from detector.rules.schema import load_rules
from detector.sample import bundled_sample, bundled_sample_config
from detector.streaming.partition_state import export_part, import_part
from streams.file_source import iter_file_batches

SAMPLE = bundled_sample()
PARTS = 3
CUT = dt.datetime(2024, 3, 7, 0, 30, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    key = tmp_path_factory.mktemp("key") / "id.key"
    key.write_text("handover-test-key-of-some-length")
    return load_config(bundled_sample_config(), {"id_hash_key_file": key})


@pytest.fixture(scope="module")
def events(config: Config) -> pl.DataFrame:
    frames = [b.result.events for b in iter_file_batches([SAMPLE], config.source_options())]
    return pl.concat(frames)


def _part_of(users: pl.Series) -> pl.Series:
    return pl.Series(
        "part", [zlib.crc32((u or "").encode()) % PARTS for u in users.to_list()], pl.Int64
    )


def _batches(events: pl.DataFrame, rows: int = 500) -> Iterator[pl.DataFrame]:
    for k in range(0, events.height, rows):
        yield events.slice(k, rows)


def _feed(pipeline: Pipeline, events: pl.DataFrame, only: tuple[int, ...] | None = None) -> None:
    """Events of partitions ``only`` (all by default) with their partition, 500 at a time."""
    parts = _part_of(events["user"])
    if only is not None:
        mine = parts.is_in(only)
        events, parts = events.filter(mine), parts.filter(mine)
    for k in range(0, events.height, 500):
        pipeline.process(events.slice(k, 500), parts.slice(k, 500))


def _ids(pipeline: Pipeline) -> dict[str, dict[str, object]]:
    return {a.id: a.to_json() for a in pipeline.alerts()}


def _new(config: Config) -> Pipeline:
    return Pipeline(config, config.load_catalog(), load_rules())


@pytest.fixture(scope="module")
def replayed(config: Config, events: pl.DataFrame) -> dict[str, dict[str, object]]:
    pipeline = _new(config)
    for batch in _batches(events):
        pipeline.process(batch)
    pipeline.finish()
    return _ids(pipeline)


def _halves(events: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    before = events["event_time"] < CUT
    return events.filter(before), events.filter(~before)


def test_one_process_on_three_partitions_raises_replays_alerts(
    config: Config, events: pl.DataFrame, replayed: dict[str, dict[str, object]]
) -> None:
    pipeline = _new(config)
    _feed(pipeline, events)
    pipeline.finish()
    assert len(pipeline.state.parts) == PARTS
    assert _ids(pipeline) == replayed
    assert pipeline.state.late_events == 0


def test_every_partition_handed_to_a_fresh_process_changes_nothing(
    config: Config, events: pl.DataFrame, replayed: dict[str, dict[str, object]]
) -> None:
    first, second = _halves(events)
    old = _new(config)
    _feed(old, first)
    shards = [pickle.dumps(export_part(old.state, k, drop=True)) for k in range(PARTS)]
    assert not old.state.parts and not old.alerts()
    new = _new(config)
    for shard in reversed(shards):  # another order: other user indices there
        import_part(new.state, pickle.loads(shard))
    _feed(new, second)
    new.finish()
    assert _ids(new) == replayed


def test_partitions_split_over_two_processes_mid_stream(
    config: Config, events: pl.DataFrame, replayed: dict[str, dict[str, object]]
) -> None:
    first, second = _halves(events)
    old = _new(config)
    _feed(old, first)
    new = _new(config)
    for k in (1, 2):
        import_part(new.state, pickle.loads(pickle.dumps(export_part(old.state, k, drop=True))))
    _feed(old, second, only=(0,))
    _feed(new, second, only=(1, 2))
    old.finish()
    new.finish()
    together = _ids(old) | _ids(new)
    assert set(_ids(old)).isdisjoint(_ids(new))
    assert set(together) == set(replayed)


def test_a_partition_taken_over_behind_the_process_clock_loses_no_event(
    config: Config, events: pl.DataFrame
) -> None:
    """Process B has read its partition to the end when partition 1 arrives from A, days
    behind: partition 1 keeps its own clock until it catches up, nothing is late."""
    first, second = _halves(events)
    a = _new(config)
    _feed(a, first, only=(1,))
    b = _new(config)
    _feed(b, events, only=(0,))
    import_part(b.state, export_part(a.state, 1, drop=True))
    assert b.state.out_of_step == {1: True}
    _feed(b, second, only=(1,))
    assert b.state.late_events == 0
    b.finish()
    whole = _new(config)
    _feed(whole, events, only=(0, 1))
    whole.finish()
    for name in ("statements", "windows", "so_far"):  # every window judged once, whole
        assert a.state.counts[name] + b.state.counts[name] == whole.state.counts[name], name


def test_a_checkpoint_copy_leaves_the_process_unchanged(
    config: Config, events: pl.DataFrame, replayed: dict[str, dict[str, object]]
) -> None:
    first, second = _halves(events)
    pipeline = _new(config)
    _feed(pipeline, first)
    for k in range(PARTS):
        pickle.dumps(export_part(pipeline.state, k, drop=False))
    _feed(pipeline, second)
    pipeline.finish()
    assert _ids(pipeline) == replayed

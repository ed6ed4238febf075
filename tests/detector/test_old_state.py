"""State files and checkpoints written by older layouts still load and continue the same."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from detector.config import Config, load_config
from detector.pipeline import Pipeline
from detector.replay import load_pipeline
from detector.rules.schema import load_rules
from detector.sample import bundled_sample, bundled_sample_config
from detector.streaming.checkpoints import CheckpointDir
from detector.streaming.partition_state import import_part
from paths import DATA
from streams.file_source import iter_file_batches

OLD = DATA / "state"
CUT = dt.datetime(2024, 3, 7, 0, 30, tzinfo=dt.UTC)  # where the old files stopped


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    key = tmp_path_factory.mktemp("key") / "id.key"
    key.write_text("old-state-fixture-key-of-some-length")
    return load_config(bundled_sample_config(), {"id_hash_key_file": key})


@pytest.fixture(scope="module")
def rest(config: Config) -> pl.DataFrame:
    """The sample's events after the old files stopped."""
    batches = iter_file_batches([bundled_sample()], config.source_options())
    events = pl.concat([b.result.events for b in batches])
    return events.filter(pl.col("event_time") >= CUT)


def _continue(pipeline: Pipeline, events: pl.DataFrame) -> list[str]:
    for k in range(0, events.height, 500):
        batch = events.slice(k, 500)
        pipeline.process(batch, pl.Series("part", [0] * batch.height, pl.Int64))
    pipeline.finish()
    return [json.dumps(a.to_json(), sort_keys=True) for a in pipeline.alerts()]


def _expected() -> list[str]:
    return (OLD / "expected-alerts.jsonl").read_text().splitlines()


def test_an_old_replay_state_file_continues_with_the_same_alerts(
    config: Config, rest: pl.DataFrame, tmp_path: Path
) -> None:
    state = tmp_path / "state.bin"
    shutil.copy(OLD / "pipeline-v3.state", state)
    assert _continue(load_pipeline(config, state), rest) == _expected()


def test_an_old_partition_checkpoint_continues_with_the_same_alerts(
    config: Config, rest: pl.DataFrame, tmp_path: Path
) -> None:
    shutil.copytree(OLD / "checkpoints", tmp_path / "checkpoints")
    checkpoint = CheckpointDir(tmp_path / "checkpoints", "audit").load(0)
    assert checkpoint is not None and checkpoint.shard is not None
    assert (checkpoint.topic, checkpoint.partition, checkpoint.epoch) == ("audit", 0, 1)
    pipeline = Pipeline(config, config.load_catalog(), load_rules())
    import_part(pipeline.state, checkpoint.shard)
    assert _continue(pipeline, rest) == _expected()

"""Where ``run`` keeps partition checkpoints: the shared directory, its ID-hash key, and
the settings that are refused before anything connects."""

from __future__ import annotations

from pathlib import Path

import pytest

from detector.cli import bundled_sample_config
from detector.config import load_config
from detector.exceptions import StreamingError
from detector.stream_checkpoint import CheckpointDir, PartitionCheckpoint
from detector.stream_options import StreamOptions
from detector.stream_runner import run_stream
from streams.kafka_records import PartitionStream


def test_the_group_shares_one_id_hash_key_made_once(tmp_path: Path) -> None:
    first, second = CheckpointDir(tmp_path, "audit"), CheckpointDir(tmp_path, "audit")
    key = first.id_key()
    assert len(key) >= 16 and second.id_key() == key == first.id_key()
    assert (tmp_path / "id-hash.key").stat().st_mode & 0o077 == 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".key-")]


def test_a_partition_checkpoint_round_trips_and_names_its_partition(tmp_path: Path) -> None:
    store = CheckpointDir(tmp_path, "audit")
    assert store.load(3) is None
    store.save(PartitionCheckpoint("audit", 3, 1234, PartitionStream("audit", 3)))
    loaded = store.load(3)
    assert loaded is not None and (loaded.partition, loaded.offset) == (3, 1234)
    assert store.path(3).stat().st_mode & 0o077 == 0
    store.path(3).rename(store.path(4))  # a file that is not partition 4's
    with pytest.raises(StreamingError, match="not a checkpoint of audit/4"):
        store.load(4)


def test_checkpoint_settings_are_refused_before_connecting(tmp_path: Path) -> None:
    config = load_config(bundled_sample_config())
    settings = config.kafka_settings("127.0.0.1:1")  # nothing listens there
    both = StreamOptions("audit", state_dir=tmp_path, checkpoint_topic="ckpt")
    with pytest.raises(StreamingError, match="not both"):
        run_stream(config, settings, both)
    keyless = StreamOptions("audit", checkpoint_topic="ckpt")
    with pytest.raises(StreamingError, match="EXFIL_ID_HASH_KEY_FILE"):
        run_stream(config, settings, keyless)

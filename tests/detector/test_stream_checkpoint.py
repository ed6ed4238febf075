"""Where ``run`` keeps partition checkpoints: the shared directory, its ID-hash key, the
settings that are refused before anything connects, and the fence that keeps a process the
group evicted from overwriting the checkpoints of the partitions it lost."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

# the sample spread over three partitions, as the in-memory handover tests have it
from test_partition_handover import (
    PARTS,
    _feed,
    _halves,
    _ids,
    _new,
    _part_of,
    config,
    events,
    replayed,
)

from detector.config import Config, load_config
from detector.exceptions import CheckpointFenced, StreamingError
from detector.sample import bundled_sample_config
from detector.streaming.checkpoints import CheckpointDir, PartitionCheckpoint
from detector.streaming.options import StreamOptions
from detector.streaming.partitions import OwnedPartitions
from detector.streaming.runner import run_stream
from streams.kafka.records import PartitionStream

__all__ = ["config", "events", "replayed"]  # fixtures, shared with the handover tests


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


def _checkpoint(partition: int, offset: int, epoch: int) -> PartitionCheckpoint:
    return PartitionCheckpoint(
        "audit", partition, offset, PartitionStream("audit", partition), epoch=epoch
    )


def _files(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``root``: its bytes and modification time."""
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_an_evicted_owner_s_save_after_a_new_claim_is_fenced_and_changes_nothing(
    tmp_path: Path,
) -> None:
    evicted, new_owner = CheckpointDir(tmp_path, "audit"), CheckpointDir(tmp_path, "audit")
    first = evicted.claim(3)
    evicted.save(_checkpoint(3, 1234, epoch=first))
    second = new_owner.claim(3)
    assert second == first + 1
    before = _files(tmp_path)
    with pytest.raises(CheckpointFenced, match=rf"audit/3 .*epoch {second}.*epoch {first}"):
        evicted.save(_checkpoint(3, 99, epoch=first))
    assert _files(tmp_path) == before
    loaded = new_owner.load(3)  # what the evicted owner saved before the claim
    assert loaded is not None and (loaded.offset, loaded.epoch) == (1234, first)
    new_owner.save(_checkpoint(3, 2000, epoch=second))
    loaded = evicted.load(3)
    assert loaded is not None and (loaded.offset, loaded.epoch) == (2000, second)


def test_each_partition_has_its_own_epoch_and_an_owner_saves_again_under_its_own(
    tmp_path: Path,
) -> None:
    store = CheckpointDir(tmp_path, "audit")
    assert [store.claim(3), store.claim(3), store.claim(4)] == [1, 2, 1]
    store.save(_checkpoint(3, 10, epoch=2))
    store.save(_checkpoint(3, 20, epoch=2))  # the same owner, a later checkpoint
    store.save(_checkpoint(4, 30, epoch=1))
    assert [(c.offset, c.epoch) for c in map(store.load, (3, 4)) if c] == [(20, 2), (30, 1)]
    with pytest.raises(CheckpointFenced):
        store.save(_checkpoint(3, 40, epoch=1))


def _owned(config: Config, events: pl.DataFrame, store: CheckpointDir) -> OwnedPartitions:
    """A process that claimed the three partitions (epoch 1 each) and read the sample's
    first half of them (their parsers at offsets 100, 101, 102)."""
    pipeline = _new(config)
    owned = OwnedPartitions("audit", pipeline.state, store)
    assert owned.take_over(range(PARTS)) == {}  # claimed; no checkpoint yet
    _feed(pipeline, _halves(events)[0])
    for p in range(PARTS):
        owned.partitions[p] = PartitionStream("audit", p)
        owned.offsets[p] = 100 + p
    return owned


def _alerted(owned: OwnedPartitions, events: pl.DataFrame, partition: int) -> set[str]:
    """Users of ``partition`` with an alert in ``owned``'s detector."""
    users = set(events.filter(_part_of(events["user"]) == partition)["user"].to_list())
    return users & {a.user for a in owned.detector.book.alerts()}


def _holds(owned: OwnedPartitions, partition: int) -> bool:
    """Whether anything of ``partition`` is in ``owned``: parser, offset, users' state."""
    return (
        partition in owned.partitions
        or partition in owned.offsets
        or partition in owned.detector.parts
    )


def test_a_partition_found_fenced_is_forgotten_and_the_others_saved(
    config: Config, events: pl.DataFrame, tmp_path: Path
) -> None:
    store = CheckpointDir(tmp_path, "audit")
    owned = _owned(config, events, store)
    assert _alerted(owned, events, 1)  # partition 1's users have something to lose
    assert owned.save_all() == set()
    # the group gave partition 1 to another process, which claimed and checkpointed it
    store.save(_checkpoint(1, 5000, epoch=store.claim(1)))
    assert owned.save_all() == {1}
    assert not _holds(owned, 1) and not _alerted(owned, events, 1)
    assert owned.offsets == {0: 100, 2: 102}  # what the runner commits
    new_owner = store.load(1)
    assert new_owner is not None and (new_owner.offset, new_owner.epoch) == (5000, 2)
    for p in (0, 2):
        saved = store.load(p)
        assert saved is not None and (saved.offset, saved.epoch) == (100 + p, 1)
        assert saved.shard is not None and _holds(owned, p)
    # partition 0 leaves (revoked) and 2, claimed by another, is found fenced on the way
    # out: only 0's offset is to commit
    store.claim(2)
    leaving = owned.leave([0, 2])
    assert (leaving.offsets, leaving.fenced) == ({0: 100}, {2})
    assert not owned.partitions and not owned.offsets and not owned.detector.parts
    assert not owned.detector.book.alerts()


def test_lost_partitions_are_forgotten_without_writing_anything(
    config: Config, events: pl.DataFrame, tmp_path: Path
) -> None:
    store = CheckpointDir(tmp_path, "audit")
    owned = _owned(config, events, store)
    assert owned.save_all() == set()
    before = _files(tmp_path)
    owned.lose([0, 2, 5])  # 5: never owned here
    assert _files(tmp_path) == before
    assert not _holds(owned, 0) and not _holds(owned, 2) and _holds(owned, 1)
    assert not _alerted(owned, events, 0) and not _alerted(owned, events, 2)
    assert _alerted(owned, events, 1)
    assert owned.leave([0, 2]).offsets == {}  # a revoke coming late commits nothing


class _Killed(Exception):
    """The process died (SIGKILL) in the middle of a checkpoint round."""


class _DyingDir(CheckpointDir):
    """A checkpoint directory whose process dies after ``saves`` more saves."""

    def __init__(self, root: Path, topic: str, saves: int) -> None:
        super().__init__(root, topic)
        self.saves = saves

    def save(self, checkpoint: PartitionCheckpoint) -> None:
        if self.saves == 0:
            raise _Killed
        self.saves -= 1
        super().save(checkpoint)


def _thirds(events: pl.DataFrame) -> list[pl.DataFrame]:
    times = events["event_time"]
    cuts = [times.quantile(q, "nearest") for q in (1 / 3, 2 / 3)]
    return [
        events.filter(times < cuts[0]),
        events.filter((times >= cuts[0]) & (times < cuts[1])),
        events.filter(times >= cuts[1]),
    ]


def test_a_process_killed_mid_round_is_resumed_from_its_last_whole_round(
    config: Config, events: pl.DataFrame, replayed: dict[str, dict[str, object]], tmp_path: Path
) -> None:
    """The process dies after checkpointing partition 0 in its second round, before 1 and
    2: its replacement resumes all three from the first round (their offsets, and the one
    copy of the process-wide models they share) and raises replay's alerts."""
    thirds = _thirds(events)
    old = _new(config)
    store = _DyingDir(tmp_path, "audit", saves=PARTS + 1)
    owned = OwnedPartitions("audit", old.state, store)
    assert owned.take_over(range(PARTS)) == {}
    for round_, third in enumerate(thirds[:2], start=1):
        _feed(old, third)
        for p in range(PARTS):
            owned.partitions.setdefault(p, PartitionStream("audit", p))
            owned.offsets[p] = round_
        if round_ == 1:
            assert owned.save_all() == set()
        else:
            with pytest.raises(_Killed):
                owned.save_all()
    torn = [store.load(p) for p in range(PARTS)]
    assert [c.offset for c in torn if c] == [2, 1, 1]  # the round the process died in
    new = _new(config)
    replacement = OwnedPartitions("audit", new.state, CheckpointDir(tmp_path, "audit"))
    assert replacement.take_over(range(PARTS)) == {0: 1, 1: 1, 2: 1}
    _feed(new, pl.concat(thirds[1:]))
    new.finish()
    assert _ids(new) == replayed


def test_a_save_that_died_before_its_file_was_written_leaves_the_last_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = CheckpointDir(tmp_path, "audit")
    store.save(_checkpoint(3, 10, epoch=1))
    store.save(_checkpoint(3, 20, epoch=1))
    assert [c.offset for c in (store.load(3), store.load_previous(3)) if c] == [20, 10]

    def killed(*args: object, **kwargs: object) -> None:
        raise _Killed

    # the latest moved aside to be the previous, then the process died
    monkeypatch.setattr("detector.streaming.checkpoints.save_state", killed)
    with pytest.raises(_Killed):
        store.save(_checkpoint(3, 30, epoch=1))
    loaded = store.load(3)
    assert loaded is not None and loaded.offset == 20 and store.load_previous(3) is None

"""``run`` never stalls silently (detector/streaming/health.py), on a real broker:

* a join kafka-python 3.0.12 left unfinished (the cause of the stalled runs) is finished;
* its heartbeats cut, the broker evicts it while kafka-python still believes it is a
  member: the watchdog sees the heartbeats unanswered, rejoins with a new group consumer
  and the run ends with replay's alerts, every record read once;
* its fetcher process frozen while records wait: ``/readyz`` says so, the fetcher is told
  to reconnect, then the process gives up with exit status 3 (what systemd or Kubernetes
  restarts); restarted, it reads everything from its checkpoints: replay's alerts.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from kafka.coordinator.base import BaseCoordinator
from kafka.structs import MemberState

from detector.config import load_config
from detector.replay import replay_files
from detector.sample import bundled_sample, bundled_sample_config
from detector.streaming.group import GroupMember
from detector.streaming.options import RunSummary, StreamOptions
from detector.streaming.runner import run_stream
from kafka_io import probe, produce, sample_records, topic, wait_ready
from realdb.kafka import KafkaBroker
from realdb.ports import free_port


def _replay_alerts() -> list[dict[str, object]]:
    config = load_config(bundled_sample_config())
    return [a.to_json() for a in replay_files([bundled_sample()], config, progress=None).alerts]


def test_a_join_kafka_python_left_unfinished_is_finished(kafka_broker: KafkaBroker) -> None:
    """kafka-python 3.0.12 loses a join that completes after the poll awaiting it gave up
    when only the leader's metadata asked for it: the member stays "rebalancing" with its
    heartbeats off, and never joins again. The group member asks again: it joins."""
    name = topic(kafka_broker, partitions=2)
    config = load_config(bundled_sample_config())
    options = StreamOptions(topic=name, group=f"g-{name}", session_timeout=10.0)
    assigned: list[set[int]] = []
    member = GroupMember(
        config.kafka_settings(kafka_broker.bootstrap), options,
        on_revoked=lambda _: {}, on_lost=lambda _: None, on_assigned=assigned.append,
    )  # fmt: skip

    def until(done: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 60
        while not done():
            assert time.monotonic() < deadline, (member.member(), assigned)
            member.poll()

    try:
        until(lambda: member.member()[0] and bool(assigned) and assigned[-1] == {0, 1})
        coordinator = member.consumer._coordinator  # the state a lost join leaves
        with coordinator._lock:
            coordinator.state = MemberState.REBALANCING
        coordinator._disable_heartbeat()
        assert not coordinator.need_rejoin()
        joins = len(assigned)
        until(lambda: member.member()[0] and len(assigned) > joins)
        assert assigned[-1] == {0, 1}
    finally:
        member.close()


def test_a_member_whose_heartbeats_go_unanswered_rejoins_and_loses_nothing(
    kafka_broker: KafkaBroker,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    # the first group coordinator of this process pretends to heartbeat and sends nothing:
    # the broker removes it after the session timeout, and nothing in kafka-python says so
    name = topic(kafka_broker, partitions=3)
    silenced: list[object] = []
    heartbeat = BaseCoordinator._do_heartbeat

    async def silent(self: BaseCoordinator) -> None:
        if not silenced and self.group_id == f"g-{name}":
            silenced.append(self)
        if silenced and self is silenced[0]:
            self.heartbeat.sent_heartbeat()
            return
        await heartbeat(self)

    monkeypatch.setattr(BaseCoordinator, "_do_heartbeat", silent)
    records = [(k, r.encode()) for k, r in sample_records(bundled_sample())]
    half = len(records) // 2
    produce(kafka_broker, name, records[:half])
    config = load_config(bundled_sample_config())
    options = StreamOptions(
        topic=name, group=f"g-{name}", alerts_topic=None, dlq_topic=None,
        state_dir=tmp_path / "state", close_at_end=True, until_idle=25.0,
        idle_flush_seconds=1.0, checkpoint_seconds=1.0, session_timeout=6.0,
    )  # fmt: skip
    done: list[RunSummary | BaseException] = []

    def consume() -> None:
        try:
            done.append(run_stream(config, config.kafka_settings(kafka_broker.bootstrap), options))
        except BaseException as exc:  # shown by the asserts below
            done.append(exc)

    worker = threading.Thread(target=consume, daemon=True)
    worker.start()
    time.sleep(8)  # evicted meanwhile; the rest arrives while it is out of the group
    produce(kafka_broker, name, records[half:])
    worker.join(timeout=180)
    assert not worker.is_alive(), "the run did not end"
    (summary,) = done
    assert isinstance(summary, RunSummary), summary
    err = capfd.readouterr().err
    assert "no heartbeat answered" in err and "rejoining" in err, err[-3000:]
    assert summary.records == len(records), err[-3000:]  # nothing read twice
    assert [a.to_json() for a in summary.alerts] == _replay_alerts(), err[-3000:]


def test_a_stalled_fetcher_reconnects_then_the_process_exits_to_be_restarted(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    """The fetcher process frozen while records wait (as a fetcher whose consumer no
    longer fetches): ``/readyz`` says which partitions read nothing and the fetcher is
    told to reconnect; thawed, it reads again. Frozen for good, the process gives up
    with exit status 3; restarted, it reads everything: replay's alerts."""
    name = topic(kafka_broker, partitions=2)
    records = [(k, r.encode()) for k, r in sample_records(bundled_sample())]
    half = len(records) // 2
    port = free_port()
    alerts = tmp_path / "alerts.jsonl"
    run = [sys.executable, "-m", "detector", "run", "--bootstrap", kafka_broker.bootstrap,
           "--topic", name, "--group", f"g-{name}", "--config", str(bundled_sample_config()),
           "--state-dir", str(tmp_path / "state"), "--checkpoint-seconds", "600",
           "--close-at-end", "--stall-seconds", "4", "--alerts-topic", "", "--dlq-topic", "",
           "--alerts-out", str(alerts)]  # fmt: skip
    proc = subprocess.Popen(
        [*run, "--metrics-port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        wait_ready(proc, port, True, "in the group, 2 partitions")
        status, body = probe(port, "/healthz")
        assert status == 200 and body["ok"] is True, body
        (fetcher,) = subprocess.run(
            ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True, check=True
        ).stdout.split()
        subprocess.run(["kill", "-STOP", fetcher], check=True)
        produce(kafka_broker, name, records[:half])
        wait_ready(proc, port, False, "not reading partitions")  # told to reconnect
        subprocess.run(["kill", "-CONT", fetcher], check=True)
        wait_ready(proc, port, True, " 0 records behind")  # reading again
        subprocess.run(["kill", "-STOP", fetcher], check=True)
        produce(kafka_broker, name, records[half:])
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 3, err[-3000:]
    assert err.count("the fetcher reconnects") == 2, err[-3000:]
    assert "exiting to be restarted" in err, err[-3000:]
    # restarted (as its supervisor would), it reads from the last checkpoint (none here)
    again = subprocess.run(
        [*run, "--until-idle", "6"], capture_output=True, text=True, timeout=180, check=False
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"records consumed  {len(records):>12,}" in again.stdout
    got = [json.loads(line) for line in alerts.read_text().splitlines()]
    assert got == _replay_alerts()

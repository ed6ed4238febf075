"""Three ``run`` processes in one consumer group on a real broker, one killed with SIGKILL
mid-stream.

The sample is produced in six chunks while three processes (static members ``p0``..``p2``,
two partitions each) judge it, checkpointing every second into one shared state dir.
After the third chunk ``p0`` is killed:

* restarted under its id (what an orchestrator does), it resumes its partitions from their
  checkpoints: the alerts topic ends with exactly the alerts of a clean run of the three
  processes, alert for alert;
* not restarted, the group rebalances after the session timeout and the survivors resume
  its partitions from their checkpoints: every alert of a clean replay is there under the
  same id, no incident is reported twice, every record is read and committed.

And one process frozen (SIGSTOP) past the session timeout, then thawed: the group evicts
it and the others claim its partitions; thawed, it finds its partitions lost or its saves
fenced, forgets them, rejoins; same checks as the second case.

Why the second is not compared alert for alert with the clean three-process run: users
moved to another process are judged against that process's peer groups and alert budget
from then on (see ARCHITECTURE.md), so a marginal alert may go either way; their own
baselines, open windows and alerts move with them (``test_partition_handover.py``
checks that exactly).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError

from detector.config import load_config
from detector.replay import replay_files
from detector.sample import bundled_sample, bundled_sample_config
from kafka_io import produce, sample_records, topic
from realdb.kafka import KafkaBroker

CHUNKS = 6
Alerts = dict[str, dict[str, object]]


@dataclass
class GroupRun:
    name: str
    #: latest revision of every alert id on the alerts topic
    alerts: Alerts
    #: (stdout, stderr) of every process that ended normally
    outs: list[tuple[str, str]]


def _latest(broker: KafkaBroker, name: str) -> Alerts:
    consumer = KafkaConsumer(
        name, bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
    )  # fmt: skip
    try:
        messages = [json.loads(m.value) for m in consumer]
    finally:
        consumer.close()
    final: Alerts = {}
    for m in messages:  # a re-sent alert is the same alert: keep its latest revision
        old = final.get(m["id"])
        if old is None or m["revision"] >= old["revision"]:
            final[m["id"]] = m
    return final


def _group_run(
    broker: KafkaBroker,
    tmp_path: Path,
    *,
    kill: bool,
    restart: bool,
    session: int = 8,
    freeze: bool = False,
) -> GroupRun:
    """Three ``run`` processes in one group judge the sample, produced in chunks once the
    group has settled (see :func:`_settled`); one is killed (and restarted) or frozen."""
    name = topic(broker)
    records = [(k, r.encode()) for k, r in sample_records(bundled_sample())]
    state = tmp_path / f"state-{name}"  # shared by the group's processes
    run = [sys.executable, "-m", "detector", "run", "--bootstrap", broker.bootstrap,
           "--topic", name, "--group", f"g-{name}", "--config", str(bundled_sample_config()),
           "--state-dir", str(state), "--checkpoint-seconds", "1", "--until-idle", "30",
           "--close-at-end", "--session-timeout", str(session), "--alerts-topic", f"{name}-alerts",
           "--dlq-topic", "", "--idle-flush-seconds", "600"]  # fmt: skip
    # no idle flush between chunks: a partition with no records in one chunk would stop
    # holding its process's other partition back, and when its records came they would be
    # late there (counted in the next window): alerts that depend on produce timing

    def start(member: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*run, "--instance-id", member],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    procs = [start(f"p{k}") for k in range(3)]
    victim = procs[0]
    try:
        # every process a member, two partitions each, before the first record (a fixed
        # wait was not enough on a loaded machine: a process still starting was frozen
        # before it ever joined, or a record was judged in a passing layout)
        _settled(broker, f"g-{name}", procs)
        step = len(records) // CHUNKS + 1
        for k in range(CHUNKS):
            produce(broker, name, records[k * step : (k + 1) * step])
            time.sleep(2)
            if freeze and k == CHUNKS // 2 - 1:
                victim.send_signal(signal.SIGSTOP)
                # evicted (the broker says so: a fixed wait was not enough on a loaded
                # machine), then the others claim its partitions meanwhile
                evicted = lambda: _evicted(broker, f"g-{name}", "p0")  # noqa: E731
                _until(evicted, 180, "the frozen p0 never evicted")
                time.sleep(4)
                victim.send_signal(signal.SIGCONT)
            if kill and k == CHUNKS // 2 - 1:
                _until(lambda: any(state.glob("partitions/*.bin")), 120, "nothing checkpointed")
                victim.send_signal(signal.SIGKILL)
                victim.wait(timeout=10)
                if restart:
                    procs.append(start("p0"))
        ended = procs[1:] if kill else procs
        outs = [p.communicate(timeout=300) for p in ended]
    finally:
        for p in procs:
            p.kill()
    if kill:
        assert victim.returncode == -signal.SIGKILL
    for p, (_, err) in zip(ended, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    _assert_all_committed(broker, name)
    return GroupRun(name, _latest(broker, f"{name}-alerts"), outs)


def _until(done: Callable[[], bool], seconds: float, why: str) -> None:
    """Until ``done()``, at most ``seconds`` (then the test fails with ``why``)."""
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, why
        time.sleep(0.5)


def _evicted(broker: KafkaBroker, group: str, instance: str) -> bool:
    """Whether the broker removed ``group``'s member of static ``instance`` for its
    silence (its log says so)."""
    log = broker.directory / "logs" / "server.log"
    text = log.read_text(encoding="utf-8", errors="replace") if log.is_file() else ""
    return any(
        f"group {group} " in line
        and f"removing member {instance}-" in line
        and "heartbeat expiration" in line
        for line in text.splitlines()
    )


def _settled(
    broker: KafkaBroker, group: str, procs: list[subprocess.Popen[str]], timeout: float = 120
) -> None:
    """Wait until ``group`` is stable with every process a member owning two partitions.

    A fixed wait is not enough on a loaded machine: the processes join one by one, and a
    first generation of fewer members hands out all six partitions. A record judged in
    that passing layout changes the process-wide models (peer groups, forests, budgets)
    of the process that judged it, and so alerts of a run compared alert for alert.
    """
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                described = admin.describe_groups([group]).get(group, {})
            except KafkaError as exc:  # no coordinator yet: the first member is joining
                described = {"error": repr(exc)}
            owned = [_owned(m) for m in described.get("members", [])]
            if described.get("group_state") == "Stable" and owned == [2] * len(procs):
                return
            # a process stops after --until-idle seconds idle, partitions or not
            dead = [p.args[-1] for p in procs if p.poll() is not None]
            assert not dead and time.monotonic() < deadline, ("group not settled", dead, described)
            time.sleep(0.5)
    finally:
        admin.close()


def _owned(member: dict[str, Any]) -> int:
    """Partitions a described group member is assigned."""
    assignment = member.get("member_assignment") or {}
    topics = (
        assignment.get("assigned_partitions", [])
        if isinstance(assignment, dict)
        else getattr(assignment, "assigned_partitions", [])
    )
    return sum(len(t["partitions"] if isinstance(t, dict) else t.partitions) for t in topics or [])


def _assert_all_committed(broker: KafkaBroker, name: str) -> None:
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=f"g-{name}")
    try:
        tps = [TopicPartition(name, p) for p in sorted(consumer.partitions_for_topic(name))]
        ends = consumer.end_offsets(tps)
        assert {tp: consumer.committed(tp) for tp in tps} == ends  # all judged, committed
    finally:
        consumer.close()


def _consumed(out: str) -> int:
    line = next(ln for ln in out.splitlines() if ln.startswith("records consumed"))
    return int(line.split()[-1].replace(",", ""))


@pytest.fixture(scope="module")
def clean(kafka_broker: KafkaBroker, tmp_path_factory: pytest.TempPathFactory) -> GroupRun:
    return _group_run(kafka_broker, tmp_path_factory.mktemp("clean"), kill=False, restart=False)


def test_a_killed_process_restarted_under_its_id_changes_no_alert(
    kafka_broker: KafkaBroker, clean: GroupRun, tmp_path: Path
) -> None:
    # a session timeout the restart beats even on a loaded machine: the group must not
    # move the victim's partitions to the survivors meanwhile (their peers would judge
    # its users: see "What depends on the process layout" in ARCHITECTURE.md)
    killed = _group_run(kafka_broker, tmp_path, kill=True, restart=True, session=30)
    replacement = _consumed(killed.outs[-1][0])
    assert 0 < replacement < sum(_consumed(out) for out, _ in clean.outs)
    assert len(clean.alerts) >= 10
    # shown when it fails: each process's summary and partition moves
    summaries = "\n".join(
        out + "".join(ln + "\n" for ln in err.splitlines() if "partitions" in ln)
        for out, err in killed.outs
    )
    assert killed.alerts == clean.alerts, summaries  # same ids, same final revisions


def test_a_killed_process_s_partitions_resume_on_the_survivors(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    _nothing_lost_nothing_twice(_group_run(kafka_broker, tmp_path, kill=True, restart=False))


def test_a_frozen_process_evicted_meanwhile_forgets_its_partitions_when_thawed(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    frozen = _group_run(kafka_broker, tmp_path, kill=False, restart=False, freeze=True)
    thawed = frozen.outs[0][1]
    # it noticed: the consumer reported them lost, or a save found them claimed
    assert "partitions lost" in thawed or "claimed by another process" in thawed, thawed[-3000:]
    _nothing_lost_nothing_twice(frozen)


def _nothing_lost_nothing_twice(run: GroupRun) -> None:
    replay = replay_files([bundled_sample()], load_config(bundled_sample_config()), progress=None)
    missing = {a.id: (a.user, a.kind) for a in replay.alerts if a.id not in run.alerts}
    assert not missing  # nothing lost: every alert of a clean replay, under its id
    by_user: dict[str, list[tuple[dt.datetime, dt.datetime, str]]] = {}
    for alert_id, a in run.alerts.items():
        start, end = (dt.datetime.fromisoformat(str(a[k])) for k in ("start", "end"))
        by_user.setdefault(str(a["user"]), []).append((start, end, alert_id))
    for user, spans in by_user.items():  # nothing twice: one id per incident
        spans.sort()
        for (_, end, first), (start, _, second) in itertools.pairwise(spans):
            assert start > end, f"{user}: {first} and {second} report the same activity"

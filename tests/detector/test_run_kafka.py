"""``exfil-detector run`` against a real Kafka broker: the alerts of replay, dead letters
with reasons, and the stream going on past them."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
import uuid
from pathlib import Path

import polars as pl
import pytest
from kafka import KafkaConsumer
from kafka.admin import ConfigResource, KafkaAdminClient

from detector.config import Config, load_config
from detector.exceptions import StreamingError
from detector.replay import replay_files
from detector.sample import bundled_sample, bundled_sample_config
from detector.streaming.options import RunSummary, StreamOptions
from detector.streaming.runner import run_stream
from kafka_io import produce as _produce
from kafka_io import read_all as _read_all
from kafka_io import sample_records as _records
from kafka_io import topic as _topic
from kafka_io import wait_ready
from realdb.kafka import KafkaBroker
from realdb.kafka_fixture import cpu_hog
from realdb.ports import free_port
from streams.file_source import SourceOptions, make_parser


def _options(topic: str, tmp_path: Path, **kw: object) -> StreamOptions:
    base: dict[str, object] = {
        "topic": topic,
        "group": f"g-{topic}",
        "alerts_topic": f"{topic}-alerts",
        "dlq_topic": f"{topic}-dlq",
        "until_idle": 2.0,
        "idle_flush_seconds": 1.0,
        "alerts_out": tmp_path / "alerts.jsonl",
    }
    return StreamOptions(**(base | kw))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(bundled_sample_config())


@pytest.mark.parametrize("loaded", [False, True], ids=["quiet", "cpu-load"])
def test_a_shipped_log_gives_the_alerts_of_replay(
    kafka_broker: KafkaBroker, config: Config, tmp_path: Path, loaded: bool
) -> None:
    """The sample shipped to 6 partitions keyed by user, consumed by one process (also
    with every core kept busy beside it)."""
    topic = _topic(kafka_broker)
    records = _records(bundled_sample())
    _produce(kafka_broker, topic, [(k, r.encode()) for k, r in records])
    options = _options(topic, tmp_path)
    with cpu_hog() if loaded else contextlib.nullcontext():
        summary = run_stream(config, config.kafka_settings(kafka_broker.bootstrap), options)
    assert summary.records == len(records) and not summary.dead_letters
    replay = replay_files([bundled_sample()], config, progress=None).alerts
    assert [a.to_json() for a in summary.alerts] == [a.to_json() for a in replay]
    # the alerts topic holds every revision, keyed by user; the last of each id is final
    sent = _read_all(kafka_broker, f"{topic}-alerts", summary.alerts_sent)
    assert len(sent) == summary.alerts_sent
    last = {}
    for message in sent:
        alert = json.loads(message.value)
        assert message.key.decode() == alert["user"]
        last[alert["id"]] = alert
    assert list(last.values()) == sorted(
        (a.to_json() for a in summary.alerts), key=lambda a: list(last).index(a["id"])
    )


def test_bad_records_go_to_the_dead_letter_topic_and_the_stream_goes_on(
    kafka_broker: KafkaBroker, config: Config, tmp_path: Path
) -> None:
    topic = _topic(kafka_broker, partitions=2)
    good = [(k, r.encode()) for k, r in _records(bundled_sample())[:400]]
    oversized = good[10][1] + b"," + b"x" * 20_000
    bad: list[tuple[str | None, bytes]] = [
        ("officer01", b"\xff\xfe not utf-8 \xc3\x28"),
        ("officer01", oversized),
        ("officer01", b'2024-03-04 09:00:00.000 UTC,"officer01","records",123,"10.0.0.1'),
    ]
    _produce(kafka_broker, topic, good[:200] + bad + good[200:])
    options = _options(topic, tmp_path, max_record_bytes=16_384)
    summary = run_stream(config, config.kafka_settings(kafka_broker.bootstrap), options)
    assert summary.records == len(good) + len(bad)
    assert summary.dead_letters == {"not_utf8": 1, "too_long": 1, "truncated": 1}
    letters = _read_all(kafka_broker, f"{topic}-dlq", 3)
    by_reason = {dict(m.headers)["reason"].decode(): m for m in letters}
    assert set(by_reason) == {"not_utf8", "too_long", "truncated"}
    assert by_reason["not_utf8"].value == bad[0][1]
    assert by_reason["too_long"].value == oversized
    assert by_reason["truncated"].value == bad[2][1]
    headers = dict(by_reason["not_utf8"].headers)
    assert headers["source_topic"].decode() == topic and int(headers["source_offset"]) >= 0
    # the good records around them were all parsed: the same statements as the file's
    whole = replay_files([bundled_sample()], config, progress=None)
    assert 0 < summary.counts["statements"] < whole.counts["statements"]


def test_canonical_json_events_give_the_alerts_of_replay(
    kafka_broker: KafkaBroker, config: Config, tmp_path: Path
) -> None:
    """Events already in the canonical table (JSON, one per message, as another collector
    sends them) are judged like the log they came from; malformed ones are dead-lettered
    with their reason and take no good event with them."""
    parser = make_parser("pgaudit-csv", None, SourceOptions())
    text = bundled_sample().read_text(encoding="utf-8")
    events = pl.concat([parser.feed(text, source="s", first_line=1).events, parser.flush().events])
    lines = events.drop("raw_ref").write_ndjson().splitlines()
    records = [(u or "", ln.encode()) for u, ln in zip(events["user"], lines, strict=True)]
    bad: list[tuple[str | None, bytes]] = [
        ("officer01", b'{"event_kind": "statement", "event_time": {}}'),
        ("officer01", b'{"event_kind": "statement", "event_time": "2024-03-05T10:00:00"}'),
        ("officer01", b'{"event_kind": "select", "event_time": "2024-03-05T10:00:00Z"}'),
        ("officer01", b'{"event_kind": "statement", "rows": 5}'),
        ("officer01", b"[1, 2]"),
    ]
    topic = _topic(kafka_broker)
    _produce(kafka_broker, topic, records[:2000] + bad + records[2000:])
    options = _options(topic, tmp_path)
    summary = run_stream(config, config.kafka_settings(kafka_broker.bootstrap), options)
    assert summary.records == len(records) + len(bad)
    assert summary.dead_letters == {"bad_timestamp": 2, "bad_event_kind": 1, "bad_json": 2}
    assert summary.events == len(records)
    replay = replay_files([bundled_sample()], config, progress=None).alerts
    assert replay and [a.to_json() for a in summary.alerts] == [a.to_json() for a in replay]


def _stop_and_restart(broker: KafkaBroker, config: Config, tmp_path: Path, **store: object) -> str:
    """One uninterrupted run of the sample, and one stopped at midnight of 6 March and
    started again (checkpoints in ``store``): the same alerts, every record read once;
    the topic of the second."""
    records = [(k, r.encode()) for k, r in _records(bundled_sample())]
    cut = next(i for i, (_, r) in enumerate(records) if r[:19] >= b"2024-03-06 00:00:00")
    settings = config.kafka_settings(broker.bootstrap)
    whole = _topic(broker)
    _produce(broker, whole, records)
    once = run_stream(config, settings, _options(whole, tmp_path, state_dir=tmp_path / "one"))
    split = _topic(broker)
    _produce(broker, split, records[:cut])
    first = run_stream(config, settings, _options(split, tmp_path, **store))
    _produce(broker, split, records[cut:])
    second = run_stream(config, settings, _options(split, tmp_path, **store))
    assert first.records == cut
    assert second.records == len(records) - cut  # nothing read twice, nothing skipped
    assert [a.to_json() for a in second.alerts] == [a.to_json() for a in once.alerts]
    return split


def test_a_restarted_detector_continues_from_its_checkpoint(
    kafka_broker: KafkaBroker, config: Config, tmp_path: Path
) -> None:
    """Stopped at midnight and started again on the same state dir, the detector ends with
    the alerts of one uninterrupted run; the group's committed offsets are the saved ones."""
    state = tmp_path / "split"
    split = _stop_and_restart(kafka_broker, config, tmp_path, state_dir=state)
    assert any(state.glob("partitions/*.bin"))
    consumer = KafkaConsumer(bootstrap_servers=kafka_broker.bootstrap, group_id=f"g-{split}")
    try:
        parts = consumer.partitions_for_topic(split)
        from kafka import TopicPartition

        tps = [TopicPartition(split, p) for p in sorted(parts)]
        ends = consumer.end_offsets(tps)
        assert all(consumer.committed(tp) == ends[tp] for tp in tps)
    finally:
        consumer.close()


def _run_in_thread(
    config: Config, broker: KafkaBroker, options: StreamOptions
) -> tuple[threading.Thread, list[object]]:
    """``run_stream`` on a thread; its summary (or what it raised) lands in the list."""
    done: list[object] = []

    def consume() -> None:
        try:
            done.append(run_stream(config, config.kafka_settings(broker.bootstrap), options))
        except BaseException as exc:  # shown by _finished
            done.append(exc)

    worker = threading.Thread(target=consume)
    worker.start()
    return worker, done


def _finished(worker: threading.Thread, done: list[object], timeout: float) -> RunSummary:
    """The summary of a ``_run_in_thread`` run, once it ended by itself (``--until-idle``)."""
    worker.join(timeout=timeout)
    assert not worker.is_alive() and done, f"the run did not end within {timeout:.0f} s"
    (summary,) = done
    assert isinstance(summary, RunSummary), "".join(traceback.format_exception(summary))
    return summary


def test_the_detector_rides_out_a_broker_restart(
    kafka_available: None, config: Config, tmp_path: Path
) -> None:
    """The broker goes down and comes back while the detector is connected and half-way
    through the sample: it reconnects and ends with replay's alerts."""
    records = [(k, r.encode()) for k, r in _records(bundled_sample())]
    half = len(records) // 2
    with KafkaBroker(tmp_path / "broker") as broker:
        topic = _topic(broker)
        _produce(broker, topic, records[:half])
        # the product's default idle flush: the second half is written while the broker's
        # partitions come back, and a partition that read nothing for that long no longer
        # holds the others back
        options = _options(
            topic, tmp_path, until_idle=12.0, checkpoint_seconds=1.0, idle_flush_seconds=5.0
        )
        worker, done = _run_in_thread(config, broker, options)
        time.sleep(4)  # consuming, then caught up and waiting
        broker.restart()
        _produce(broker, topic, records[half:])
        summary = _finished(worker, done, timeout=180)
    assert summary.records == len(records)
    replay = replay_files([bundled_sample()], config, progress=None).alerts
    assert [a.to_json() for a in summary.alerts] == [a.to_json() for a in replay]
    assert summary.counts["late_events"] == 0


def test_a_burst_after_a_quiet_spell_waits_for_every_partition(
    kafka_broker: KafkaBroker, config: Config, tmp_path: Path
) -> None:
    """Every partition is caught up and flushed; then the rest of the log is written, one
    partition's records a second before the others' (a shipper's next batch lands on the
    partitions one after another). The first partition's records must not run ahead of
    the others' (they would arrive late): the flushed partitions hold them back until
    they deliver. Same alerts as replay, no late event."""
    from kafka import KafkaProducer
    from kafka.partitioner.default import murmur2

    records = [(k, r.encode()) for k, r in _records(bundled_sample())]
    half = len(records) // 2
    topic = _topic(kafka_broker)
    _produce(kafka_broker, topic, records[:half])
    # the product's default wait (5 s): the other partitions' records come 1 s after the
    # first's, and may take a few seconds more to write on a loaded machine
    # (the run ends 25 s after all is read: well after the second half is written)
    options = _options(topic, tmp_path, until_idle=25.0, idle_flush_seconds=5.0)
    worker, done = _run_in_thread(config, kafka_broker, options)
    time.sleep(12)  # joined, read, caught up, every partition flushed (5 s idle)
    by_partition: dict[int, list[tuple[str, bytes]]] = {}
    for key, value in records[half:]:
        p = (murmur2(key.encode()) & 0x7FFFFFFF) % 6  # the default partitioner's choice
        by_partition.setdefault(p, []).append((key, value))
    first, *rest = sorted(by_partition)
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap, acks="all")
    try:
        for batch in ([first], rest):
            for p in batch:
                for key, value in by_partition[p]:
                    producer.send(topic, key=key.encode(), value=value, partition=p)
            producer.flush()
            time.sleep(1.0)  # the first partition's records are read before the others'
    finally:
        producer.close()
    summary = _finished(worker, done, timeout=120)
    assert summary.records == len(records)
    assert summary.counts["late_events"] == 0
    replay = replay_files([bundled_sample()], config, progress=None).alerts
    assert [a.to_json() for a in summary.alerts] == [a.to_json() for a in replay]


def test_ship_then_run_from_the_command_line_and_stop_on_sigterm(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    """``ship`` the sample, ``run`` it as a process, SIGTERM it: it finishes the batch,
    checkpoints, commits and exits 0; a second ``run`` on the state dir reads nothing new."""
    topic = f"audit-{uuid.uuid4().hex[:8]}"
    cli = [sys.executable, "-m", "detector"]
    sample, config_file = str(bundled_sample()), str(bundled_sample_config())
    ship = [*cli, "ship", sample, "--bootstrap", kafka_broker.bootstrap, "--topic", topic]
    subprocess.run([*ship, "--create-partitions", "6"], check=True, capture_output=True)
    state = tmp_path / "state"
    run = [*cli, "run", "--bootstrap", kafka_broker.bootstrap, "--topic", topic]
    run += ["--config", config_file, "--state-dir", str(state), "--checkpoint-seconds", "1"]
    proc = subprocess.Popen(run, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not any(state.glob("partitions/*.bin")) and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(3)  # past the first checkpoint: everything consumed
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "records consumed         9,027" in out
    again = subprocess.run(
        [*run, "--until-idle", "2"], check=True, capture_output=True, text=True, timeout=120
    )
    assert "records consumed             0" in again.stdout


def test_ship_and_run_authenticate_with_sasl_from_the_config_and_env(
    kafka_available: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broker that wants SASL/PLAIN: the [kafka] section names the user, the password
    comes from EXFIL_KAFKA_SASL_PASSWORD; a wrong one is refused with a clear error."""
    sasl_port = free_port()
    monkeypatch.setenv("EXFIL_KAFKA_SASL_PORT", str(sasl_port))
    monkeypatch.setenv("EXFIL_KAFKA_SASL_USERS", "detector:s3cr3t-pw")
    config_file = tmp_path / "detector.toml"
    sample_config = bundled_sample_config().read_text(encoding="utf-8")
    catalog = bundled_sample_config().parent / "catalog.toml"
    config_file.write_text(
        sample_config.replace('path = "catalog.toml"', f'path = "{catalog}"')
        + '\n[kafka]\nsecurity_protocol = "SASL_PLAINTEXT"\nsasl_mechanism = "PLAIN"\n'
        'sasl_username = "detector"\n',
        encoding="utf-8",
    )
    bootstrap = f"127.0.0.1:{sasl_port}"
    topic = f"audit-{uuid.uuid4().hex[:8]}"
    cli = [sys.executable, "-m", "detector"]
    with KafkaBroker(tmp_path / "broker"):
        good = dict(os.environ, EXFIL_KAFKA_SASL_PASSWORD="s3cr3t-pw")
        subprocess.run(
            [*cli, "ship", str(bundled_sample()), "--bootstrap", bootstrap, "--topic", topic,
             "--create-partitions", "3", "--config", str(config_file)],
            check=True, capture_output=True, env=good, timeout=120,
        )  # fmt: skip
        monkeypatch.setenv("EXFIL_KAFKA_SASL_PASSWORD", "s3cr3t-pw")
        config = load_config(config_file)
        summary = run_stream(config, config.kafka_settings(bootstrap), _options(topic, tmp_path))
        bad = dict(os.environ, EXFIL_KAFKA_SASL_PASSWORD="wrong")
        refused = subprocess.run(
            [*cli, "run", "--bootstrap", bootstrap, "--topic", topic, "--config",
             str(config_file), "--until-idle", "1"],
            capture_output=True, text=True, env=bad, timeout=120,
        )  # fmt: skip
    assert summary.records == len(_records(bundled_sample()))
    replay = replay_files([bundled_sample()], config, progress=None).alerts
    assert [a.to_json() for a in summary.alerts] == [a.to_json() for a in replay]
    assert refused.returncode == 2
    assert "SASL PLAIN as detector: check the password" in refused.stderr
    assert "s3cr3t" not in refused.stderr + refused.stdout


@pytest.mark.parametrize("loaded", [False, True], ids=["quiet", "cpu-load"])
def test_a_second_process_joining_the_group_reads_nothing_twice(
    kafka_broker: KafkaBroker, tmp_path: Path, loaded: bool
) -> None:
    """While the sample trickles in, a second detector process joins the group: the first
    judges what its revoked partitions delivered and commits before giving them up, so
    together they read every record exactly once (also with every core kept busy)."""
    with cpu_hog() if loaded else contextlib.nullcontext():
        _second_process_joins(kafka_broker)


def _second_process_joins(kafka_broker: KafkaBroker) -> None:
    topic = _topic(kafka_broker)
    records = [(k, r.encode()) for k, r in _records(bundled_sample())]
    run = [sys.executable, "-m", "detector", "run", "--bootstrap", kafka_broker.bootstrap,
           "--topic", topic, "--group", f"g-{topic}", "--config", str(bundled_sample_config()),
           "--until-idle", "20", "--checkpoint-seconds", "1"]  # fmt: skip
    ports = [free_port(), free_port()]

    def start(k: int) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*run, "--metrics-port", str(ports[k])],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    first = start(0)
    try:
        _produce(kafka_broker, topic, records[:3000])
        wait_ready(first, ports[0], True, "6 partitions, 0 records behind")
        second = start(1)
        try:  # the group rebalances: three partitions each, then the rest arrives
            wait_ready(second, ports[1], True, "3 partitions")
            wait_ready(first, ports[0], True, "3 partitions")
            _produce(kafka_broker, topic, records[3000:])
            outs = [p.communicate(timeout=240) for p in (first, second)]
        finally:
            second.kill()
    finally:
        first.kill()
    counts = []
    for out, err in outs:
        line = next((ln for ln in out.splitlines() if ln.startswith("records consumed")), None)
        assert line is not None, err[-2000:]
        counts.append(int(line.split()[-1].replace(",", "")))
    logs = "\n".join(f"process {k}:\n{err[-1500:]}" for k, (_, err) in enumerate(outs))
    assert all(n > 0 for n in counts), f"{counts}\n{logs}"
    assert sum(counts) == len(records), f"{counts}\n{logs}"


def test_partitions_resume_from_a_compacted_checkpoint_topic(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    """Processes that share no directory hand partitions over through a compacted topic:
    a second process (no state dir) continues where the first stopped, with one
    uninterrupted run's alerts; a record not signed with the group's key is refused."""
    key = tmp_path / "id.key"
    key.write_text("group-shared-key-of-some-length")
    config = load_config(bundled_sample_config(), {"id_hash_key_file": key})
    checkpoints = f"{uuid.uuid4().hex[:8]}-checkpoints"
    split = _stop_and_restart(kafka_broker, config, tmp_path, checkpoint_topic=checkpoints)
    settings = config.kafka_settings(kafka_broker.bootstrap)
    admin = KafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap)
    try:
        described = admin.describe_configs([ConfigResource("TOPIC", checkpoints)])
    finally:
        admin.close()
    assert described["topic"][checkpoints]["cleanup.policy"]["value"] == "compact"
    # a forged checkpoint for partition 0: refused before anything is unpickled
    _produce(kafka_broker, checkpoints, [(f"{split}/0", b"EXFILCKPT1" + b"\0" * 40)])
    with pytest.raises(StreamingError, match="not signed with this group's key"):
        run_stream(config, settings, _options(split, tmp_path, checkpoint_topic=checkpoints))

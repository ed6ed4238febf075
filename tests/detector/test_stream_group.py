"""The group member's judgment of Kafka trouble (detector/streaming/group.py): errors out of
kafka-python's poll, and a broker outage waited out rather than rejoined."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka.errors import KafkaConnectionError, TopicAuthorizationFailedError

from detector.config import load_config
from detector.exceptions import StreamingError
from detector.sample import bundled_sample_config
from detector.streaming.group import OUTAGE_PATIENCE, GroupMember
from detector.streaming.options import StreamOptions
from kafka_io import topic
from realdb.kafka import KafkaBroker


def _member(broker: KafkaBroker) -> GroupMember:
    config = load_config(bundled_sample_config())
    return GroupMember(
        config.kafka_settings(broker.bootstrap),
        StreamOptions(topic=topic(broker, partitions=1), group="g", session_timeout=6.0),
        on_revoked=lambda _: {}, on_lost=lambda _: None, on_assigned=lambda _: None,
    )  # fmt: skip


@pytest.fixture
def member(kafka_broker: KafkaBroker) -> Iterator[GroupMember]:
    made = _member(kafka_broker)
    yield made
    made.abandon()


def _poll_raises(member: GroupMember, exc: Exception, monkeypatch: pytest.MonkeyPatch) -> None:
    def poll(**_: object) -> None:
        raise exc

    monkeypatch.setattr(member.consumer, "poll", poll)


def test_a_refused_connection_out_of_poll_is_logged_once_and_the_loop_goes_on(
    member: GroupMember, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _poll_raises(member, KafkaConnectionError("111 ECONNREFUSED"), monkeypatch)
    for _ in range(3):
        member.poll()
    assert capsys.readouterr().err.count("group poll: KafkaConnectionError") == 1


def test_a_kafka_error_that_retrying_cannot_fix_ends_the_run_as_ours(
    member: GroupMember, monkeypatch: pytest.MonkeyPatch
) -> None:
    _poll_raises(member, TopicAuthorizationFailedError("audit"), monkeypatch)
    with pytest.raises(StreamingError, match="TopicAuthorizationFailedError") as caught:
        member.poll()
    assert isinstance(caught.value.__cause__, TopicAuthorizationFailedError)


def test_while_no_broker_answers_the_watchdog_waits_the_outage_out(
    kafka_available: None, tmp_path: Path
) -> None:
    with KafkaBroker(tmp_path / "broker") as broker:
        member = _member(broker)
        try:
            deadline = time.monotonic() + 60
            while not member.member()[0]:
                assert time.monotonic() < deadline, member.member()
                member.poll()
            broker.stop()
            deadline = time.monotonic() + 60
            while member.member()[1] != "no broker answers":
                assert time.monotonic() < deadline, member.member()
                member.poll()  # refused connections: logged, not raised
            assert member.member() == (False, "no broker answers", OUTAGE_PATIENCE)
        finally:
            member.abandon()

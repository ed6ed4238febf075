"""The Kafka clients of a ``run`` process and where it checkpoints its partitions (set up
before the loop starts: bad settings are refused before anything is consumed)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from detector.config import Config
from detector.exceptions import StreamingError
from detector.streaming.checkpoint_topic import CheckpointTopic
from detector.streaming.checkpoints import CheckpointDir, CheckpointStore
from detector.streaming.options import StreamOptions
from streams.kafka.settings import KafkaSettings


def group_consumer(settings: KafkaSettings, options: StreamOptions) -> Any:
    """The consumer holding the group membership and committing (kafka-python imported
    here: ``replay`` needs none). It reads nothing: the fetcher process does, with
    :func:`fetch_args`."""
    from kafka import KafkaConsumer

    return _connect(
        settings,
        lambda: KafkaConsumer(
            group_id=options.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=int(options.session_timeout * 1000),
            group_instance_id=options.instance_id,
            **settings.client_args(),
        ),
    )


def producer(settings: KafkaSettings) -> Any:
    """The producer of alerts and dead letters."""
    from kafka import KafkaProducer

    return _connect(
        settings, lambda: KafkaProducer(acks="all", linger_ms=20, **settings.client_args())
    )


def _connect(settings: KafkaSettings, make: Callable[[], Any]) -> Any:
    from kafka.errors import KafkaError

    try:
        return make()
    except KafkaError as exc:
        hint = ""
        if settings.security_protocol.startswith("SASL"):
            hint = (
                f" (SASL {settings.sasl_mechanism} as {settings.sasl_username}: check the password)"
            )
        raise StreamingError(f"cannot reach Kafka at {settings.bootstrap}{hint}: {exc}") from exc


def fetch_args(settings: KafkaSettings, options: StreamOptions) -> dict[str, Any]:
    """The fetcher process's consumer (:mod:`streams.kafka.fetcher`): no group, told which
    partitions to read and from where."""
    return {
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_poll_records": options.poll_records,
        # big fetches: the pipeline's cost is per batch as much as per record
        "max_partition_fetch_bytes": 8 * 1024 * 1024,
        "fetch_max_bytes": 64 * 1024 * 1024,
        # an incremental fetch session leaves out partitions with nothing new: one
        # assigned again (a rebalance gave it back) would never learn its high watermark,
        # and never count as caught up
        "enable_incremental_fetch_sessions": False,
        **settings.client_args(),
    }


def checkpoint_store(
    config: Config, settings: KafkaSettings, options: StreamOptions
) -> tuple[CheckpointStore | None, bytes | None]:
    """Where partitions are checkpointed, and the ID-hash key if the store provides it."""
    if options.checkpoint_topic is not None:
        if options.state_dir is not None:
            raise StreamingError("give --state-dir or --checkpoint-topic, not both")
        if config.id_hash_key_file is None:
            raise StreamingError(
                "--checkpoint-topic needs EXFIL_ID_HASH_KEY_FILE: the group's processes must "
                "share the ID-hash key (it also signs the checkpoints)"
            )
        key = config.id_hash_key()
        return CheckpointTopic(settings, options.checkpoint_topic, options.topic, key), key
    if options.state_dir is not None:
        store = CheckpointDir(options.state_dir, options.topic)
        # without a configured key, the processes on the directory share one made there
        return store, store.id_key() if config.id_hash_key_file is None else None
    return None, None

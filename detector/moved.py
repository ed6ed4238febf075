"""Modules that moved, by their old names: state files and checkpoints pickle classes by
module name, so files written before a move still load (:func:`models.state.load_state`).

Issue 16 moved the flat ``detector/`` and ``streams/`` modules into one folder per job, and
split modules past ~400 lines (a ``"module:Class"`` key moves one class). A name here is
never reused for another module: an old file must not unpickle into a different class.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

MOVED: Final[Mapping[str, str]] = MappingProxyType(
    {
        "detector.stream_runner": "detector.streaming.runner",
        "detector.stream_clients": "detector.streaming.clients",
        "detector.stream_delivery": "detector.streaming.delivery",
        "detector.stream_options": "detector.streaming.options",
        "detector.stream_partitions": "detector.streaming.partitions",
        "detector.partition_state": "detector.streaming.partition_state",
        "detector.checkpoint_topic": "detector.streaming.checkpoint_topic",
        "detector.stream_checkpoint": "detector.streaming.checkpoints",
        "detector.scorer_handover": "detector.streaming.handover",
        "detector.pipeline_worker": "detector.streaming.worker",
        "detector.stream_guard": "detector.streaming.guard",
        "detector.stream_group": "detector.streaming.group",
        "detector.stream_health": "detector.streaming.health",
        "detector.threat_rules": "detector.rules.schema",
        "detector.threat_match": "detector.rules.matching",
        "detector.window_columns": "detector.rules.vocabulary",
        "detector.reason_templates": "detector.rules.reasons",
        "detector.cli": "detector.commands.cli",
        "detector.run_command": "detector.commands.run",
        "detector.replay_command": "detector.replay",
        "detector.parse_command": "detector.commands.parse",
        "detector.ship_command": "detector.commands.ship",
        "detector.source_flags": "detector.commands.source_flags",
        "detector.alert_table": "detector.commands.alert_table",
        "detector.simulation": "detector.lab.simulation",
        "detector.evaluation": "detector.lab.evaluation",
        "detector.simulate_command": "detector.lab.simulate_command",
        "detector.evaluate_command": "detector.lab.evaluate_command",
        "streams.pg_prefix": "streams.pg.prefix",
        "streams.pg_time": "streams.pg.timestamps",
        "streams.pg_merge": "streams.pg.merge",
        "streams.pg_records": "streams.pg.records",
        "streams.pgaudit_stderr": "streams.pg.stderr",
        "streams.pgaudit_csvlog": "streams.pg.csvlog",
        "streams.pgaudit_jsonlog": "streams.pg.jsonlog",
        "streams.pgaudit_payload": "streams.pg.payload",
        "streams.mariadb_audit": "streams.mariadb.audit",
        "streams.mariadb_fields": "streams.mariadb.fields",
        "streams.kafka_settings": "streams.kafka.settings",
        "streams.kafka_decode": "streams.kafka.decode",
        "streams.kafka_records": "streams.kafka.records",
        "streams.kafka_fetcher": "streams.kafka.fetcher",
        "streams.partition_merge": "streams.kafka.partition_merge",
        "streams.record_keys": "streams.kafka.record_keys",
        # single classes that left a module that still exists ("module:Class")
        "detector.alerts:AlertBook": "detector.alert_book",
    }
)

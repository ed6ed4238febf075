"""``exfil-detector run``: its flags and entry point (the engine is
:mod:`detector.streaming.runner`, imported only when ``run`` runs: ``parse`` and ``replay``
start without kafka-python and the streaming code)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

from detector.commands.source_flags import (
    add_metrics_flags,
    add_source_flags,
    metrics_values,
    source_values,
)
from detector.config import load_config
from detector.exceptions import StreamUnhealthy
from detector.streaming.health import READY_LAG

#: ``run``'s exit status when its watchdog gives up (2 is a usage or setup error).
UNHEALTHY_EXIT = 3


def add_parser(sub: Any) -> None:
    """The ``run`` subcommand's flags."""
    r = sub.add_parser("run", help="consume audit records from Kafka; produce alerts to Kafka")
    r.add_argument("--bootstrap", required=True, metavar="HOST:PORT")
    r.add_argument("--topic", required=True, help="audit records, keyed by database user")
    r.add_argument("--group", default="exfil-detector", help="consumer group")
    r.add_argument("--alerts-topic", default="exfil-alerts", help="'' for none")
    r.add_argument("--dlq-topic", default="db-audit-dlq", help="'' for none")
    r.add_argument("--state-dir", type=Path, default=None, help="checkpoints (continue from)")
    r.add_argument("--alerts-out", type=Path, default=None, help="also a JSON Lines file")
    r.add_argument("--until-idle", type=float, default=None, metavar="SECONDS",
                   help="stop once every partition has been caught up this long (a "
                   "process in its group with no partition: once it has been so this "
                   "long)")  # fmt: skip
    r.add_argument("--checkpoint-seconds", type=float, default=30.0)
    r.add_argument("--poll-records", type=int, default=200_000, metavar="N",
                   help="most records judged per loop turn (larger: faster catch-up, "
                   "more memory)")  # fmt: skip
    r.add_argument("--session-timeout", type=float, default=45.0, metavar="SECONDS",
                   help="a process silent this long (killed, hung) loses its partitions to "
                   "the group's others (Kafka's session.timeout.ms)")  # fmt: skip
    r.add_argument("--checkpoint-topic", default=None,
                   help="checkpoints in this compacted topic instead of --state-dir (processes "
                   "on several machines; needs EXFIL_ID_HASH_KEY_FILE)")  # fmt: skip
    r.add_argument("--instance-id", default=None,
                   help="static group membership: a process restarted under the same id "
                   "gets its partitions back without a rebalance")  # fmt: skip
    r.add_argument("--idle-flush-seconds", type=float, default=5.0, metavar="SECONDS",
                   help="a partition caught up this long releases what its parser holds "
                   "back and stops holding the other partitions' events back (shorter: "
                   "lower latency on quiet partitions; longer: fewer late events when "
                   "a quiet partition's records arrive)")  # fmt: skip
    r.add_argument("--stall-seconds", type=float, default=None, metavar="SECONDS",
                   help="records waiting in an owned partition and none read this long: "
                   "the fetcher reconnects; as long again: exit 3 to be restarted "
                   "(default: 120, or two session timeouts if longer)")  # fmt: skip
    r.add_argument("--ready-lag", type=int, default=READY_LAG, metavar="RECORDS",
                   help="/readyz fails beyond this many records behind")  # fmt: skip
    r.add_argument("--close-at-end", action="store_true",
                   help="at --until-idle, close every window like replay (default "
                   "without --state-dir)")  # fmt: skip
    add_source_flags(r)  # the format is detected per partition when not given
    add_metrics_flags(r)
    r.set_defaults(run=run)


def run(args: argparse.Namespace, stream: TextIO | None = None) -> int:
    """``exfil-detector run``: the CLI entry."""
    from detector.streaming.options import StopSignal, StreamOptions
    from detector.streaming.runner import run_stream

    stream = sys.stdout if stream is None else stream
    config = load_config(args.config, source_values(args) | metrics_values(args))
    settings = config.kafka_settings(args.bootstrap)
    options = StreamOptions(
        topic=args.topic,
        group=args.group,
        alerts_topic=args.alerts_topic or None,
        dlq_topic=args.dlq_topic or None,
        state_dir=args.state_dir,
        alerts_out=args.alerts_out,
        until_idle=args.until_idle,
        checkpoint_seconds=args.checkpoint_seconds,
        close_at_end=True if args.close_at_end else None,
        session_timeout=args.session_timeout,
        poll_records=args.poll_records,
        instance_id=args.instance_id,
        checkpoint_topic=args.checkpoint_topic,
        idle_flush_seconds=args.idle_flush_seconds,
        stall_seconds=args.stall_seconds,
        ready_lag=args.ready_lag,
    )
    stop = StopSignal()
    stop.install()
    try:
        summary = run_stream(config, settings, options, stop)
    except StreamUnhealthy as exc:  # exit 3: the supervisor restarts the process
        print(f"exfil-detector: error: {exc}; exiting to be restarted", file=sys.stderr)
        return UNHEALTHY_EXIT
    print(summary.render(), file=stream)
    return 0

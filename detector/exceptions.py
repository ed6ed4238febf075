"""Errors of the application layer (CLI, config, pipeline wiring)."""

from streams.exceptions import ExfilDetectorError


class DetectorError(ExfilDetectorError):
    """Root of the application layer's errors."""


class ConfigError(DetectorError):
    """The configuration file, a flag or an environment variable is invalid."""


class ThreatRuleError(DetectorError):
    """A threat rule file is invalid, or a window frame lacks a column the rules need."""


class AlertError(DetectorError):
    """Matches handed to the alert book are malformed, or the alerts file cannot be written."""


class FeedbackError(DetectorError):
    """An analyst feedback file is invalid."""


class ShipError(DetectorError):
    """``ship`` could not publish: the topic is missing, Kafka is unreachable, or a record
    was not delivered (the CLI exits with status 1)."""


class StreamingError(DetectorError):
    """The Kafka side of ``run`` failed (broker unreachable, a send not acknowledged)."""


class StreamUnhealthy(StreamingError):
    """``run``'s watchdog gave up: out of its consumer group, or not reading partitions
    with records waiting, longer than its bounds allow even after rejoining or
    reconnecting. The process checkpointed what it could and exits with status 3, to be
    restarted by its supervisor (systemd, Kubernetes)."""


class CheckpointFenced(StreamingError):
    """A partition's checkpoint was not saved: a newer owner of the partition saved one
    already, so the group gave the partition to another process while this one was not
    looking (evicted: heartbeats missed past the session timeout). This process lost the
    partition; its checkpoint must not overwrite the new owner's."""


class MetricsError(DetectorError):
    """The metrics endpoint cannot be served."""

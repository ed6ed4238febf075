"""How to reach a Kafka cluster: bootstrap servers, TLS and SASL, as kafka-python arguments.

One frozen object for every client the detector opens (the audit consumer, the alerts and
dead-letter producers, ``exfil-detector ship``). Secrets never live in the repo or the
config file: the SASL password comes from ``EXFIL_KAFKA_SASL_PASSWORD`` or from a file
named by ``EXFIL_KAFKA_SASL_PASSWORD_FILE`` / ``sasl_password_file`` (read by
:mod:`detector.config`), and ``repr`` never shows it.

>>> s = KafkaSettings("127.0.0.1:9092", security_protocol="SASL_SSL",
...                   sasl_mechanism="SCRAM-SHA-512", sasl_username="det", sasl_password="s3cr3t")
>>> sorted(s.client_args())  # doctest: +NORMALIZE_WHITESPACE
['bootstrap_servers', 'client_id', 'reconnect_backoff_max_ms', 'sasl_mechanism',
 'sasl_plain_password', 'sasl_plain_username', 'security_protocol']
>>> "s3cr3t" in repr(s)
False
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from streams.exceptions import StreamsError

SECURITY_PROTOCOLS: Final = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS: Final = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")

#: Longest wait between two attempts to reconnect to a broker. kafka-python's default (30
#: s, doubling from 50 ms) left the detector's fetcher blind for up to 30 s after a broker
#: restart while the group member saw the broker back; Apache Kafka's Java client waits
#: at most 1 s.
RECONNECT_BACKOFF_MAX_MS: Final = 1000


class KafkaSettingsError(StreamsError):
    """Kafka connection settings that cannot work (named in the message)."""


@dataclass(frozen=True)
class KafkaSettings:
    """Connection settings shared by every Kafka client of one process.

    Parameters
    ----------
    bootstrap
        ``host:port[,host:port...]``.
    security_protocol
        One of :data:`SECURITY_PROTOCOLS`.
    sasl_mechanism, sasl_username, sasl_password
        For the ``SASL_*`` protocols (:data:`SASL_MECHANISMS`).
    ssl_cafile, ssl_certfile, ssl_keyfile
        PEM files for the ``*SSL`` protocols (CA bundle; client certificate and key for
        mutual TLS).
    client_id
        Shown in the broker's logs and quotas.
    """

    bootstrap: str
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    client_id: str = "exfil-detector"

    def __post_init__(self) -> None:
        if not self.bootstrap or any(":" not in h for h in self.bootstrap.split(",")):
            raise KafkaSettingsError(
                f"bootstrap must be host:port[,host:port], got {self.bootstrap!r}"
            )
        if self.security_protocol not in SECURITY_PROTOCOLS:
            raise KafkaSettingsError(
                f"security_protocol {self.security_protocol!r} is not one of "
                f"{', '.join(SECURITY_PROTOCOLS)}"
            )
        if self.security_protocol.startswith("SASL"):
            if self.sasl_mechanism not in SASL_MECHANISMS:
                raise KafkaSettingsError(
                    f"{self.security_protocol} needs sasl_mechanism, one of "
                    f"{', '.join(SASL_MECHANISMS)} (got {self.sasl_mechanism!r})"
                )
            if not self.sasl_username or self.sasl_password is None:
                raise KafkaSettingsError(
                    f"{self.security_protocol} needs sasl_username and a password "
                    "(EXFIL_KAFKA_SASL_PASSWORD or EXFIL_KAFKA_SASL_PASSWORD_FILE)"
                )

    def client_args(self) -> dict[str, Any]:
        """Keyword arguments every kafka-python client takes."""
        args: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap.split(","),
            "client_id": self.client_id,
            "reconnect_backoff_max_ms": RECONNECT_BACKOFF_MAX_MS,
        }
        if self.security_protocol != "PLAINTEXT":
            args["security_protocol"] = self.security_protocol
        if self.security_protocol.startswith("SASL"):
            args["sasl_mechanism"] = self.sasl_mechanism
            args["sasl_plain_username"] = self.sasl_username
            args["sasl_plain_password"] = self.sasl_password
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            if getattr(self, name):
                args[name] = getattr(self, name)
        return args

"""The one frozen configuration object, read in one place.

Precedence, lowest first: built-in defaults, the TOML file (``--config``), environment
variables, command-line flags. Secrets never live in the file or the repository; they are
read from the environment (or a file the environment names) where later issues need them.

Environment variables
---------------------
``EXFIL_FORMAT``            input format (``auto`` by default)
``EXFIL_LOG_LINE_PREFIX``   PostgreSQL ``log_line_prefix`` of stderr logs
``EXFIL_SERVER``            server name written into events
``EXFIL_MARIADB_TIMEZONE``  IANA zone of MariaDB audit timestamps (``UTC``)
``EXFIL_CATALOG``           sensitivity catalog TOML file
``EXFIL_ID_HASH_KEY_FILE``  file holding the secret (>= 16 bytes) that keys ID-number
                            hashes; without it a random per-process key is used, so
                            distinct-person counts are exact but hashes differ per run
``EXFIL_ALERTS_PER_DAY``    alert budget: expected alerts per day per window scale
``EXFIL_STATE``             state file (``--state``)
``EXFIL_FEEDBACK``          analyst feedback file (``--feedback``, see detector/feedback.py)
``EXFIL_KAFKA_SECURITY_PROTOCOL``, ``EXFIL_KAFKA_SASL_MECHANISM``, ``EXFIL_KAFKA_SASL_USERNAME``,
``EXFIL_KAFKA_SSL_CAFILE``  Kafka TLS/SASL settings (``[kafka]`` keys of the same names)
``EXFIL_KAFKA_SASL_PASSWORD`` the SASL password itself (never in a file of the repo), or
``EXFIL_KAFKA_SASL_PASSWORD_FILE`` a file holding it (``sasl_password_file`` in ``[kafka]``)
``EXFIL_METRICS_PORT``      serve Prometheus metrics on ``/metrics`` at this port (``off``:
                            none; default: 9717 for ``run``, none for ``replay``)
``EXFIL_METRICS_ADDR``      ... on this address (``0.0.0.0`` by default)

Config file (TOML)
------------------
.. code-block:: toml

    [source]
    format = "auto"
    log_line_prefix = "%m [%p] %q%u@%d "
    server = "records-db-1"
    mariadb_timezone = "Asia/Shanghai"
    [source.tz_abbreviations]
    CST = "+08:00"

    [catalog]
    path = "catalog.toml"

    [detection]
    alerts_per_day = 5.0      # the alert budget scores are calibrated to, per window scale
    learning_hours = 24.0     # no alerts in the first hours of event time (models learn)
    lateness_seconds = 60.0   # how late an event may arrive and still count in its window
    statement_min_rows = 100  # statements judged on their own from this many sensitive rows
    learn_every_hours = 1.0   # models learn once per this much event time (24: daily, faster)
    so_far = true             # hour and day patterns also judged on the hour/day so far, as
                              # each 5 minutes/hour closes (false: at the window's end only)
    multivariate = true       # river HalfSpaceTrees adds to the score of matched windows
    peer_clusters = true      # users without a role get learned peer groups (k-means)
    feedback = "feedback.toml"  # analyst verdicts: expected jobs, false positives

    [kafka]                   # exfil-detector run / ship (bootstrap from --bootstrap)
    security_protocol = "SASL_SSL"
    sasl_mechanism = "SCRAM-SHA-512"
    sasl_username = "exfil-detector"
    sasl_password_file = "/run/secrets/kafka-password"   # or EXFIL_KAFKA_SASL_PASSWORD
    ssl_cafile = "/etc/ssl/certs/kafka-ca.pem"

    [metrics]                 # Prometheus /metrics (detector/metrics.py)
    port = 9717               # "off": none (default: 9717 for run, none for replay)
    addr = "0.0.0.0"
    linger_seconds = 0.0      # replay: keep serving this long after the end (last scrape)

    [peers]
    # Roles whose accounts are service/batch accounts (schedules and hosts are strict).
    service_roles = ["etl", "backup"]
    [peers.users]
    # user name or glob pattern -> role (peer group); first match wins, in file order.
    # Users matching nothing share one default peer group.
    "officer*" = "desk_officer"
    etl_loader = "etl"
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import polars as pl

from detector.exceptions import ConfigError
from streams.exceptions import ExfilDetectorError
from streams.file_source import SourceOptions
from streams.kafka.settings import KafkaSettings, KafkaSettingsError

if TYPE_CHECKING:
    from detector.feedback import Feedback
    from features.catalog import Catalog

ENV_VARS: Mapping[str, str] = {
    "EXFIL_FORMAT": "format",
    "EXFIL_LOG_LINE_PREFIX": "log_line_prefix",
    "EXFIL_SERVER": "server",
    "EXFIL_MARIADB_TIMEZONE": "mariadb_timezone",
    "EXFIL_CATALOG": "catalog",
    "EXFIL_ID_HASH_KEY_FILE": "id_hash_key_file",
    "EXFIL_ALERTS_PER_DAY": "alerts_per_day",
    "EXFIL_STATE": "state",
    "EXFIL_FEEDBACK": "feedback",
    "EXFIL_KAFKA_SECURITY_PROTOCOL": "kafka_security_protocol",
    "EXFIL_KAFKA_SASL_MECHANISM": "kafka_sasl_mechanism",
    "EXFIL_KAFKA_SASL_USERNAME": "kafka_sasl_username",
    "EXFIL_KAFKA_SASL_PASSWORD_FILE": "kafka_sasl_password_file",
    "EXFIL_KAFKA_SSL_CAFILE": "kafka_ssl_cafile",
    "EXFIL_METRICS_PORT": "metrics_port",
    "EXFIL_METRICS_ADDR": "metrics_addr",
}
#: ``metrics_port`` when metrics are turned off (``off`` in the file, env or flags).
METRICS_OFF: Final = -1
#: Keys of the ``[kafka]`` section (stored as ``kafka_<key>``).
_KAFKA_KEYS: Final = (
    "security_protocol", "sasl_mechanism", "sasl_username", "sasl_password_file",
    "ssl_cafile", "ssl_certfile", "ssl_keyfile",
)  # fmt: skip

_DETECTION_KEYS: Mapping[str, type] = {
    "alerts_per_day": float,
    "learning_hours": float,
    "lateness_seconds": float,
    "statement_min_rows": float,
    "learn_every_hours": float,
}
#: ``[detection]`` switches (true or false): judging the hour/day so far, and the two
#: online models that can be turned off (the evaluation's ablations, ``--without``)
_DETECTION_FLAGS: Final = ("so_far", "multivariate", "peer_clusters")


@dataclass(frozen=True)
class Config:
    """Everything the detector is told.

    >>> Config().format
    'auto'
    """

    format: str = "auto"
    log_line_prefix: str | None = None
    server: str | None = None
    mariadb_timezone: str = "UTC"
    tz_abbreviations: Mapping[str, str] = field(default_factory=dict)
    catalog: Path | None = None
    id_hash_key_file: Path | None = None
    alerts_per_day: float = 5.0
    learning_hours: float = 24.0
    lateness_seconds: float = 60.0
    statement_min_rows: float = 100.0
    learn_every_hours: float = 1.0
    so_far: bool = True
    #: river HalfSpaceTrees over the z-vector adds to matched windows' scores
    multivariate: bool = True
    #: learned peer groups (scikit-learn k-means) for users the config gives no role
    peer_clusters: bool = True
    roles: tuple[tuple[str, str], ...] = ()
    service_roles: frozenset[str] = frozenset()
    state: Path | None = None
    feedback: Path | None = None
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password_file: Path | None = None
    kafka_ssl_cafile: str | None = None
    kafka_ssl_certfile: str | None = None
    kafka_ssl_keyfile: str | None = None
    #: ``None``: the job's default (``run`` serves metrics, ``replay`` does not);
    #: :data:`METRICS_OFF`: none
    metrics_port: int | None = None
    metrics_addr: str = "0.0.0.0"
    metrics_linger_seconds: float = 0.0

    def role_of(self, user: str) -> str:
        """The configured role (peer group) of ``user``; ``""`` when none matches.

        >>> Config(roles=(("officer*", "desk_officer"),)).role_of("officer07")
        'desk_officer'
        """
        for pattern, role in self.roles:
            if re.fullmatch(glob_regex(pattern), user):
                return role
        return ""

    def role_expr(self, user: str = "user") -> pl.Expr:
        """:meth:`role_of` as a polars expression over a column of user names.

        >>> c = Config(roles=(("officer*", "desk"), ("etl_?", "etl")))
        >>> users = pl.DataFrame({"user": ["officer1", "etl_1", "x"]})
        >>> users.select(c.role_expr())["role"].to_list()
        ['desk', 'etl', '']
        """
        expr: Any = pl
        for pattern, role in self.roles:
            expr = expr.when(pl.col(user).str.contains(glob_regex(pattern))).then(pl.lit(role))
        if not self.roles:
            return pl.col(user).str.head(0).alias("role")
        return expr.otherwise(pl.lit("")).alias("role")

    def id_hash_key(self) -> bytes:
        """The secret keying ID-number hashes (never stored in the repo or the config)."""
        if self.id_hash_key_file is None:
            from features.keyed_hash import random_key

            return random_key()
        try:
            key = self.id_hash_key_file.read_bytes().strip()
        except OSError as exc:
            raise ConfigError(
                f"cannot read ID hash key file {self.id_hash_key_file}: {exc.strerror}"
            ) from exc
        if len(key) < 16:
            raise ConfigError(f"ID hash key in {self.id_hash_key_file} is shorter than 16 bytes")
        return key

    def load_catalog(self) -> Catalog:
        """The sensitivity catalog (name heuristics only when none is configured)."""
        from features.catalog import Catalog

        return Catalog() if self.catalog is None else Catalog.load(self.catalog)

    def load_feedback(self) -> Feedback:
        """The analyst verdicts (none when no feedback file is configured)."""
        from detector.feedback import Feedback

        return Feedback() if self.feedback is None else Feedback.load(self.feedback)

    def kafka_settings(self, bootstrap: str, env: Mapping[str, str] | None = None) -> KafkaSettings:
        """Settings for the Kafka clients; the SASL password from ``EXFIL_KAFKA_SASL_PASSWORD``
        or the password file (read now, never kept in the config)."""
        environ = os.environ if env is None else env
        password = environ.get("EXFIL_KAFKA_SASL_PASSWORD") or None
        if password is None and self.kafka_sasl_password_file is not None:
            try:
                text = self.kafka_sasl_password_file.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(
                    f"cannot read Kafka SASL password file {self.kafka_sasl_password_file}: "
                    f"{exc.strerror}"
                ) from exc
            password = text.rstrip("\r\n")
        try:
            return KafkaSettings(
                bootstrap,
                security_protocol=self.kafka_security_protocol,
                sasl_mechanism=self.kafka_sasl_mechanism,
                sasl_username=self.kafka_sasl_username,
                sasl_password=password,
                ssl_cafile=self.kafka_ssl_cafile,
                ssl_certfile=self.kafka_ssl_certfile,
                ssl_keyfile=self.kafka_ssl_keyfile,
            )
        except KafkaSettingsError as exc:
            raise ConfigError(str(exc)) from exc

    def metrics_port_for(self, default: int | None) -> int | None:
        """The port a job serves metrics on (``None``: none), given the job's default.

        >>> Config().metrics_port_for(9717), Config(metrics_port=METRICS_OFF).metrics_port_for(9717)
        (9717, None)
        """
        if self.metrics_port is None:
            return default
        return None if self.metrics_port == METRICS_OFF else self.metrics_port

    def source_options(self) -> SourceOptions:
        return SourceOptions(
            format=self.format,
            log_line_prefix=self.log_line_prefix,
            server=self.server,
            tz_abbreviations=dict(self.tz_abbreviations),
            mariadb_timezone=self.mariadb_timezone,
        )


def glob_regex(pattern: str) -> str:
    """A user-name glob (``*`` any run, ``?`` one character; nothing else is special) as an
    anchored regular expression (Python's ``re`` and polars both accept it).

    >>> print(glob_regex("etl_*.prod"))
    ^etl_.*\\.prod$
    """
    return "^" + re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".") + "$"


def _from_file(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    values: dict[str, Any] = {}
    known = {"source", "catalog", "detection", "peers", "kafka", "metrics"}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"config file {path}: unknown section(s) {sorted(unknown)}")
    source = dict(data.get("source", {}))
    allowed = {"format", "log_line_prefix", "server", "mariadb_timezone", "tz_abbreviations"}
    bad = set(source) - allowed
    if bad:
        raise ConfigError(f"config file {path}: unknown key(s) in [source]: {sorted(bad)}")
    values.update(source)
    kafka = dict(data.get("kafka", {}))
    bad = set(kafka) - set(_KAFKA_KEYS)
    if bad:
        raise ConfigError(f"config file {path}: unknown key(s) in [kafka]: {sorted(bad)}")
    values.update({f"kafka_{k}": v for k, v in kafka.items()})
    metrics = dict(data.get("metrics", {}))
    bad = set(metrics) - {"port", "addr", "linger_seconds"}
    if bad:
        raise ConfigError(f"config file {path}: unknown key(s) in [metrics]: {sorted(bad)}")
    values.update({f"metrics_{k}": v for k, v in metrics.items()})
    if "path" in data.get("catalog", {}):
        values["catalog"] = (path.parent / data["catalog"]["path"]).resolve()
    detection = dict(data.get("detection", {}))
    if "feedback" in detection:
        values["feedback"] = (path.parent / str(detection.pop("feedback"))).resolve()
    bad = set(detection) - set(_DETECTION_KEYS) - set(_DETECTION_FLAGS)
    if bad:
        raise ConfigError(f"config file {path}: unknown key(s) in [detection]: {sorted(bad)}")
    values.update(detection)
    peers = dict(data.get("peers", {}))
    bad = set(peers) - {"service_roles", "users"}
    if bad:
        raise ConfigError(f"config file {path}: unknown key(s) in [peers]: {sorted(bad)}")
    users = peers.get("users", {})
    if not isinstance(users, dict) or not all(isinstance(v, str) for v in users.values()):
        raise ConfigError(f"config file {path}: [peers.users] maps user patterns to role names")
    values["roles"] = tuple(users.items())
    service = peers.get("service_roles", [])
    if not isinstance(service, list) or not all(isinstance(v, str) for v in service):
        raise ConfigError(f"config file {path}: [peers] service_roles is a list of role names")
    values["service_roles"] = frozenset(service)
    return values


def _metrics_values(values: dict[str, Any]) -> None:
    """The ``[metrics]`` values checked and typed (env values are strings; ``off`` is
    :data:`METRICS_OFF`)."""
    try:
        if str(values.get("metrics_port")).lower() == "off":
            values["metrics_port"] = METRICS_OFF
        elif values.get("metrics_port") is not None:
            values["metrics_port"] = int(values["metrics_port"])
        values["metrics_linger_seconds"] = float(values.get("metrics_linger_seconds", 0.0))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"metrics port (or off) and linger_seconds are numbers: {exc}") from exc
    port = values.get("metrics_port")
    if port is not None and port != METRICS_OFF and not 0 <= port <= 65535:
        raise ConfigError(f"metrics port must be 0-65535 or off, got {port}")
    if values["metrics_linger_seconds"] < 0:
        raise ConfigError("metrics linger_seconds must not be negative")


def load_config(
    config_file: Path | None = None,
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Config:
    """Build the config from file, environment and flags (``None`` flags are unset).

    >>> load_config(env={"EXFIL_FORMAT": "pgaudit-csv"}, flags={"server": "db1"}).format
    'pgaudit-csv'
    """
    values: dict[str, Any] = {}
    if config_file is not None:
        values.update(_from_file(config_file))
    environ = os.environ if env is None else env
    for var, name in ENV_VARS.items():
        if environ.get(var):
            values[name] = environ[var]
    values.update({k: v for k, v in (flags or {}).items() if v is not None})
    names = {f.name for f in fields(Config)}
    for name in ("catalog", "id_hash_key_file", "state", "feedback", "kafka_sasl_password_file"):
        if values.get(name) is not None:
            values[name] = Path(values[name])
    for name in _DETECTION_FLAGS:
        if not isinstance(values.get(name, True), bool):
            raise ConfigError(f"{name} must be true or false, got {values[name]!r}")
    for name, kind in _DETECTION_KEYS.items():
        if name in values:
            try:
                values[name] = kind(values[name])
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{name} must be a number, got {values[name]!r}") from exc
            positive = ("alerts_per_day", "learn_every_hours")
            if values[name] < 0 or (name in positive and values[name] == 0):
                raise ConfigError(f"{name} must be positive, got {values[name]!r}")
    _metrics_values(values)
    config = replace(Config(), **{k: v for k, v in values.items() if k in names})
    try:
        config.source_options()
    except ExfilDetectorError as exc:
        raise ConfigError(str(exc)) from exc
    return config

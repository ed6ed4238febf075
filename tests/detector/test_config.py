"""The config file's [detection] keys: read, checked, and bad values named."""

from __future__ import annotations

from pathlib import Path

import pytest

from detector.config import load_config
from detector.exceptions import ConfigError


def _write(tmp_path: Path, detection: str) -> Path:
    path = tmp_path / "detector.toml"
    path.write_text(f"[detection]\n{detection}\n", encoding="utf-8")
    return path


def test_detection_keys_are_read(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, "so_far = false\nlearn_every_hours = 24"))
    assert config.so_far is False and config.learn_every_hours == 24.0
    assert load_config(_write(tmp_path, "")).so_far is True


@pytest.mark.parametrize(
    ("detection", "message"),
    [
        ('so_far = "yes"', "so_far must be true or false, got 'yes'"),
        ("learn_every_hours = 0", "learn_every_hours must be positive"),
        ("so_far_hours = 1", "unknown key(s) in [detection]: ['so_far_hours']"),
    ],
)
def test_bad_detection_values_are_named(tmp_path: Path, detection: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, detection))
    assert message in str(err.value)


def test_kafka_settings_take_the_password_from_env_or_file(tmp_path: Path) -> None:
    secret = tmp_path / "kafka-password"
    secret.write_text("s3cr3t\n", encoding="utf-8")
    path = tmp_path / "detector.toml"
    path.write_text(
        '[kafka]\nsecurity_protocol = "SASL_PLAINTEXT"\nsasl_mechanism = "SCRAM-SHA-256"\n'
        f'sasl_username = "det"\nsasl_password_file = "{secret}"\n',
        encoding="utf-8",
    )
    config = load_config(path, env={})
    from_file = config.kafka_settings("127.0.0.1:9092", env={}).client_args()
    assert from_file["sasl_plain_password"] == "s3cr3t"
    assert from_file["sasl_plain_username"] == "det"
    from_env = config.kafka_settings("k1:9092,k2:9092", env={"EXFIL_KAFKA_SASL_PASSWORD": "e"})
    assert from_env.client_args()["sasl_plain_password"] == "e"
    assert from_env.client_args()["bootstrap_servers"] == ["k1:9092", "k2:9092"]
    assert "s3cr3t" not in repr(config) and "e'" not in repr(from_env)


def test_kafka_settings_name_what_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "detector.toml"
    path.write_text('[kafka]\nsecurity_protocol = "SASL_SSL"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="SASL_SSL needs sasl_mechanism"):
        load_config(path, env={}).kafka_settings("127.0.0.1:9092", env={})
    path.write_text('[kafka]\nsasl_user = "x"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) in \[kafka\]"):
        load_config(path, env={})
    with pytest.raises(ConfigError, match="bootstrap must be host:port"):
        load_config(env={}).kafka_settings("localhost")

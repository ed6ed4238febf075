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

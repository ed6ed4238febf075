"""Analyst verdicts stick: expected jobs raise nothing and are learned; false positives stay
closed (detector/feedback.py), on the bundled sample."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from detector.config import load_config
from detector.exceptions import FeedbackError
from detector.feedback import Feedback
from detector.replay import replay_files
from detector.sample import bundled_sample, bundled_sample_config

SAMPLE = bundled_sample()


def _replay(tmp_path: Path, config_text: str, feedback: str | None) -> list:
    key = tmp_path / "id.key"
    key.write_text("feedback-test-key-0123456789")
    config_file = tmp_path / "config.toml"
    config_file.write_text(config_text, encoding="utf-8")
    flags: dict[str, object] = {"id_hash_key_file": key}
    if feedback is not None:
        (tmp_path / "feedback.toml").write_text(feedback, encoding="utf-8")
        flags["feedback"] = tmp_path / "feedback.toml"
    config = load_config(config_file, flags)
    return replay_files([SAMPLE], config, progress=None).alerts


NO_ROLES = f'[catalog]\npath = "{SAMPLE.parent / "catalog.toml"}"\n'


def test_expected_jobs_raise_nothing_but_misuse_of_the_account_still_does(
    tmp_path: Path,
) -> None:
    """Without roles in the config the nightly ETL and backup jobs look like bulk theft;
    the analyst declares them expected at their hours, and the account's daytime misuse
    (14:40) and use from a new host are still caught."""
    before = _replay(tmp_path, NO_ROLES, None)
    nightly = [a for a in before if a.user in {"etl_loader", "backup_agent"} and a.start.hour < 3]
    assert len(nightly) >= 4  # the problem the verdicts solve
    after = _replay(
        tmp_path,
        NO_ROLES,
        '[[expected]]\nuser = "etl_loader"\nhours = [2]\nnote = "nightly load"\n'
        '[[expected]]\nuser = "backup_*"\nhours = [1]\nkinds = ["smash_and_grab"]\n',
    )
    left = [(a.user, a.start.isoformat()) for a in after if a.user == "backup_agent"]
    assert left == []
    etl = [a for a in after if a.user == "etl_loader"]
    assert [a.start.hour for a in etl] == [14]  # the daytime misuse; 02:41 shares hour 2
    others = [a.id for a in before if a.user not in {"etl_loader", "backup_agent"}]
    assert others == [a.id for a in after if a.user not in {"etl_loader", "backup_agent"}]


def test_a_false_positive_stays_closed(tmp_path: Path) -> None:
    config = (
        bundled_sample_config()
        .read_text(encoding="utf-8")
        .replace('path = "catalog.toml"', f'path = "{SAMPLE.parent / "catalog.toml"}"')
    )
    before = _replay(tmp_path, config, None)
    grab = next(a for a in before if a.user == "officer04")
    after = _replay(
        tmp_path, config, f'[[false_positive]]\nalert = "{grab.id}"\nnote = "approved"\n'
    )
    closed = [a for a in after if a.id == grab.id]
    assert [a.status for a in closed] == ["false_positive"]
    assert [a.id for a in after] == [a.id for a in before]
    assert all(a.status == "open" for a in after if a.id != grab.id)
    assert closed[0].to_json()["status"] == "false_positive"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[expected]]\nkinds = ["smash_and_grab"]\n', "expected[0].user"),
        ('[[expected]]\nuser = "x"\nkinds = ["theft"]\n', "expected[0].kinds"),
        ('[[expected]]\nuser = "x"\nhours = [24]\n', "expected[0].hours"),
        ('[[expected]]\nuser = "x"\nuntil = "soon"\n', "expected[0].until"),
        ('[[expected]]\nuser = "x"\nwho = "me"\n', "unknown key(s) ['who']"),
        ('[[false_positive]]\nalert = "officer04"\n', "false_positive[0].alert"),
        ("[[verdict]]\n", "unknown section(s) ['verdict']"),
        ("[[expected]\n", "not valid TOML"),
    ],
)
def test_bad_feedback_is_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(FeedbackError, match=re.escape(message)):
        Feedback.loads(text, source="fb.toml")

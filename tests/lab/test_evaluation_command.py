"""``run_evaluate`` end to end on the bundled sample (a real PostgreSQL 15 + pgaudit log,
copied to a temp dir; no service needed), and the logs-directory contract.

About 15 s: four evaluations of 7 days x 20 users (two replaying it) and one replay.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from detector.alerts import write_jsonl
from detector.config import load_config
from detector.lab.evaluation.ablation import ablate
from detector.lab.evaluation.baselines import BASELINES
from detector.lab.evaluation.errors import EvaluationError
from detector.lab.evaluation.evaluate import evaluate, run_evaluate
from detector.lab.evaluation.inputs import bundled_catalog, read_logs_dir, resolve_config
from detector.lab.evaluation.report import read_json, render_markdown
from detector.replay import replay_files
from detector.sample import bundled_sample
from streams.exceptions import ExfilDetectorError

SAMPLE_DIR = bundled_sample().parent


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("eval-sample") / "sample"
    shutil.copytree(SAMPLE_DIR, out)
    return out


@pytest.fixture(scope="module")
def printed(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    json_out = tmp_path_factory.mktemp("eval-json") / "eval.json"
    stream = io.StringIO()
    assert run_evaluate(sample_dir, json_out=json_out, stream=stream) == 0
    return stream.getvalue(), json_out


def test_prints_one_block_per_detector_ours_first(printed: tuple[str, Path]) -> None:
    text, _ = printed
    blocks = ["[ours]", *(f"[{b.name}]" for b in BASELINES)]
    positions = [text.index(b) for b in blocks]
    assert positions == sorted(positions)
    assert "postgresql.csv (postgres)" in text and "warm-up     3 days" in text
    assert "pgaudit log_rows" in text and "MariaDB" in text  # how rows were known
    for line in ("smash_and_grab", "low_and_slow", "overall", "after warm-up", "targets"):
        assert line in text
    assert "per 100 active user-days" in text


def test_our_detector_catches_every_sample_threat_without_false_alerts(
    printed: tuple[str, Path],
) -> None:
    result = read_json(printed[1])
    ours = result.detectors[0]
    assert ours.name == "ours" and ours.overall.total == 10
    assert ours.overall.caught == ours.overall.total
    assert ours.false_pairs == 0 and ours.hard_negatives_alerted == 0
    assert ours.active_user_days > 0 and ours.hard_negatives == 34
    assert [d.name for d in result.detectors[1:]] == [b.name for b in BASELINES]
    assert result.warmup_end.isoformat() == "2024-03-07T00:00:00+00:00"
    assert 0.9 < result.rows_logged_share <= 1.0


def test_numbers_are_reproducible_across_runs(printed: tuple[str, Path], sample_dir: Path) -> None:
    again = evaluate(sample_dir)
    assert again == read_json(printed[1])
    assert json.loads(printed[1].read_text(encoding="utf-8")) == again.to_json()


@pytest.fixture(scope="module")
def alerts_file(sample_dir: Path) -> Path:
    """Our alerts on the sample, as ``replay --alerts-out`` writes them."""
    config = load_config(sample_dir / "config.toml")
    alerts = sample_dir.parent / "alerts.jsonl"
    write_jsonl(replay_files([sample_dir / "postgresql.csv"], config, progress=None).alerts, alerts)
    return alerts


def test_alerts_file_replaces_the_replay(
    sample_dir: Path, alerts_file: Path, printed: tuple[str, Path]
) -> None:
    from_file = evaluate(sample_dir, alerts_file=alerts_file)
    assert from_file.detectors == read_json(printed[1]).detectors


def test_markdown_renders_several_runs(printed: tuple[str, Path]) -> None:
    result = read_json(printed[1])
    text = render_markdown([result, result])
    assert text.count("### sample: 7 days, 20 users") == 2
    assert "| ours | 10/10 |" in text and "| sentinel |" in text
    assert "Scoring: caught" in text


def test_warmup_days_move_the_false_alert_window(
    sample_dir: Path, alerts_file: Path, printed: tuple[str, Path]
) -> None:
    three = read_json(printed[1])
    none = evaluate(sample_dir, alerts_file=alerts_file, warmup_days=0)
    assert none.warmup_end.isoformat() == "2024-03-04T00:00:00+00:00"
    assert none.detectors[0].active_user_days > three.detectors[0].active_user_days
    assert all(d.warmup_alerts == 0 for d in none.detectors)
    # what is caught does not depend on the warm-up, except for the model it trains
    scores = {d.name: d for d in none.detectors}
    assert scores.pop("isolation_forest").note.startswith("not trained")
    assert [d.overall for d in scores.values()] == [
        d.overall for d in three.detectors if d.name != "isolation_forest"
    ]
    with pytest.raises(EvaluationError, match="warm-up days"):
        evaluate(sample_dir, alerts_file=alerts_file, warmup_days=-1)


def test_config_is_built_from_users_json_without_config_toml(tmp_path: Path) -> None:
    for name in ("labels.json", "users.json"):
        shutil.copy(SAMPLE_DIR / name, tmp_path / name)
    (tmp_path / "postgresql-2024-03-04_013000.csv").write_text("", encoding="utf-8")
    logs = read_logs_dir(tmp_path)
    assert logs.db == "postgres" and logs.log_files[0].name.startswith("postgresql-")
    config = resolve_config(logs)
    assert config.catalog == bundled_catalog().resolve()
    assert config.service_roles == frozenset({"etl", "backup"})
    assert config.role_of("officer03") == "desk_officer"
    assert logs.labels.height == len(json.loads((SAMPLE_DIR / "labels.json").read_text()))


def test_run_json_names_the_logs_to_replay(tmp_path: Path) -> None:
    for name in ("labels.json", "users.json"):
        shutil.copy(SAMPLE_DIR / name, tmp_path / name)
    (tmp_path / "a.csv").write_text("", encoding="utf-8")
    (tmp_path / "postgresql-x.csv").write_text("", encoding="utf-8")
    (tmp_path / "run.json").write_text('{"replay": ["a.csv"], "db": "mariadb"}', "utf-8")
    logs = read_logs_dir(tmp_path)
    assert [p.name for p in logs.log_files] == ["a.csv"] and logs.db == "mariadb"
    (tmp_path / "run.json").write_text('{"replay": ["gone.csv"]}', "utf-8")
    with pytest.raises(EvaluationError, match="missing log files"):
        read_logs_dir(tmp_path)


def test_mariadb_logs_are_found_without_run_json(tmp_path: Path) -> None:
    for name in ("labels.json", "users.json"):
        shutil.copy(SAMPLE_DIR / name, tmp_path / name)
    (tmp_path / "server_audit.log").write_text("", encoding="utf-8")
    assert read_logs_dir(tmp_path).db == "mariadb"


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"users.json": "{}"}, "no audit logs"),
        ({"users.json": "{}", "x.csv": "", "run.json": "[1]"}, "not a JSON object"),
        ({"postgresql.csv": "", "users.json": "{}"}, "labels.json"),
        ({"postgresql.csv": "", "users.json": "{}", "labels.json": "{bad"}, "not valid JSON"),
        (
            {"postgresql.csv": "", "users.json": "{}", "labels.json": '[{"kind": "x"}]'},
            "lacks 'user'",
        ),
    ],
)
def test_unusable_logs_dirs_raise(tmp_path: Path, files: dict[str, str], message: str) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    with pytest.raises(EvaluationError, match=message):
        evaluate(tmp_path)


def test_empty_logs_raise_under_the_project_root(tmp_path: Path) -> None:
    for name in ("labels.json", "users.json"):
        shutil.copy(SAMPLE_DIR / name, tmp_path / name)
    (tmp_path / "postgresql.csv").write_text("", encoding="utf-8")
    with pytest.raises(EvaluationError, match="cannot read the logs") as info:
        evaluate(tmp_path, alerts_file=_empty(tmp_path))
    assert isinstance(info.value.__cause__, ExfilDetectorError)


def test_logs_without_statements_raise(tmp_path: Path) -> None:
    for name in ("labels.json", "users.json"):
        shutil.copy(SAMPLE_DIR / name, tmp_path / name)
    # a real login, and no statement after it
    login = SAMPLE_DIR.joinpath("postgresql.csv").read_text(encoding="utf-8").splitlines()[:2]
    (tmp_path / "postgresql.csv").write_text("\n".join(login) + "\n", encoding="utf-8")
    with pytest.raises(EvaluationError, match="no statements"):
        evaluate(tmp_path, alerts_file=_empty(tmp_path))


def _empty(tmp_path: Path) -> Path:
    path = tmp_path / "none.jsonl"
    path.write_text("", encoding="utf-8")
    return path


def test_an_ablation_scores_the_detector_without_the_part_and_without_baselines(
    sample_dir: Path,
) -> None:
    full = evaluate(sample_dir, baselines=False)
    ablated = evaluate(sample_dir, without={"multivariate", "roles"}, baselines=False)
    assert [d.name for d in full.detectors] == [d.name for d in ablated.detectors] == ["ours"]
    assert ablated.detectors[0].description.endswith("without multivariate, roles")
    assert full.detectors[0].overall.caught == full.detectors[0].overall.total > 0
    with pytest.raises(EvaluationError, match="--without 'hst'"):
        evaluate(sample_dir, without={"hst"}, baselines=False)


def test_ablations_take_the_parts_away_from_the_config(sample_dir: Path) -> None:
    config = resolve_config(read_logs_dir(sample_dir))
    assert config.roles and config.service_roles and config.multivariate
    bare = ablate(config, {"roles", "peer-clusters", "multivariate"})
    assert (bare.roles, bare.service_roles) == ((), frozenset())
    assert not bare.multivariate and not bare.peer_clusters

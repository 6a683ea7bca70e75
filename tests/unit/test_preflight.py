"""Which store a command uses is never a guess (dealreg/preflight.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dealreg.preflight import OperatorError, check_backend, describe_store, masked_url
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEALREG_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


@pytest.mark.parametrize("given", [{"database_url": "postgresql+asyncpg://u:p@db/x"},
                                   {"kafka_bootstrap_servers": "k:9092"}])
def test_a_distributed_setting_without_a_backend_is_refused(
        given: dict[str, str], tmp_path: Path) -> None:
    with pytest.raises(OperatorError) as refused:
        check_backend(Settings(data_dir=tmp_path, **given), data_dir_must_exist=False)
    assert "DEALREG_BACKEND is not" in str(refused.value)
    assert refused.value.exit_code == 2


def test_an_explicit_backend_is_not_ambiguous(tmp_path: Path) -> None:
    (tmp_path / "eventlog.sqlite3").touch()
    for backend in ("embedded", "distributed"):
        check_backend(Settings(backend=backend, data_dir=tmp_path,  # type: ignore[arg-type]
                               database_url="postgresql+asyncpg://u:p@db/x"),
                      data_dir_must_exist=True)


def test_a_missing_embedded_data_directory_is_refused_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(OperatorError, match="no embedded data directory"):
        check_backend(Settings(data_dir=missing), data_dir_must_exist=True)
    assert not missing.exists()


@pytest.mark.parametrize("url", ["postgresql+asyncpg://ops:s3cr%40t%3Ax@db.example:5433/dr",
                                 "postgresql://ops:plain@db.example/dr"])
def test_a_printed_database_url_never_shows_the_password(url: str) -> None:
    shown = masked_url(url)
    assert "***" in shown and "s3cr" not in shown and "plain" not in shown
    assert "ops" in shown and "db.example" in shown
    settings = Settings(backend="distributed", database_url=url)
    assert "***" in describe_store(settings) and "plain" not in describe_store(settings)


@pytest.mark.parametrize("url", ["postgresql://ops:plain@db.example/dr",
                                 "postgres://ops:plain@db.example/dr"])
def test_a_plain_postgresql_url_uses_the_async_driver(url: str) -> None:
    settings = Settings(backend="distributed", database_url=url)
    assert settings.database_url == "postgresql+asyncpg://ops:plain@db.example/dr"


@pytest.mark.parametrize("url", ["mysql://ops:plain@db.example/dr",
                                 "postgresql+psycopg2://ops:plain@db.example/dr", "db.example"])
def test_a_database_url_that_is_not_postgresql_is_refused_at_start(url: str) -> None:
    done = subprocess.run([sys.executable, "-m", "dealreg", "db", "upgrade"],
                          capture_output=True, text=True, timeout=60,
                          env={**_clean_env(), "DEALREG_BACKEND": "distributed",
                               "DEALREG_DATABASE_URL": url})
    assert done.returncode == 2, done.stderr
    assert "DEALREG_DATABASE_URL" in done.stderr and "postgresql+asyncpg://" in done.stderr
    assert "Traceback" not in done.stderr and "plain" not in done.stderr, done.stderr


def test_a_misspelt_setting_is_named_with_the_real_one() -> None:
    done = subprocess.run([sys.executable, "-m", "dealreg", "db", "upgrade"],
                          capture_output=True, text=True, timeout=60,
                          env={**_clean_env(), "DEALREG_KAFKA_BOOTSTRAP": "k:9092",
                               "DEALREG_BACKEND": "nonsense"})
    assert done.returncode == 2, done.stderr
    assert "DEALREG_KAFKA_BOOTSTRAP is not a dealreg setting" in done.stderr, done.stderr
    assert "did you mean DEALREG_KAFKA_BOOTSTRAP_SERVERS?" in done.stderr, done.stderr


def test_every_variable_the_project_reads_is_known() -> None:
    import re
    files = [ROOT / "README.md", ROOT / "deploy" / "kafka.sh", ROOT / "dealreg" / "cli.py",
             ROOT / "Dockerfile", ROOT / "deploy" / "docker-compose.yml",
             *sorted((ROOT / "deploy" / "k8s").rglob("*.yaml"))]
    texts = [p.read_text() for p in files]
    variable = re.compile(r"DEALREG_[A-Z_]*[A-Z](?![A-Z_*])")
    names = {m for text in texts for m in variable.findall(text)}
    env = {name: "x" for name in names}
    from dealreg.preflight import unknown_variables
    assert unknown_variables(env) == []


def test_an_unknown_log_level_is_a_settings_error_not_a_traceback(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "dealreg", "dev", "--port", "1",
                           "--data-dir", str(tmp_path / "d")],
                          capture_output=True, text=True, timeout=60,
                          env={**_clean_env(), "DEALREG_LOG_LEVEL": "verbose"})
    assert done.returncode == 2, done.stderr
    assert "DEALREG_LOG_LEVEL" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not (tmp_path / "d").exists()
    assert Settings(log_level="debug").log_level == "DEBUG"


@pytest.mark.parametrize("variable, value", [
    ("DEALREG_PORT", "99999"), ("DEALREG_PORT", "-1"), ("DEALREG_TOPIC_PARTITIONS", "0"),
    ("DEALREG_NOTIFICATION_SCHEDULE_SECONDS", "abc"), ("DEALREG_DATA_DIR", "/proc/nope")])
def test_an_impossible_setting_is_one_line_and_exit_2(variable: str, value: str) -> None:
    done = subprocess.run([sys.executable, "-m", "dealreg", "dev"],
                          capture_output=True, text=True, timeout=60,
                          env={**_clean_env(), "DEALREG_PORT": "1", variable: value})
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "╭" not in done.stderr, done.stderr
    assert variable.removeprefix("DEALREG_").lower() in done.stderr.lower().replace(
        "-", "_"), done.stderr


@pytest.mark.parametrize("variable, value", [
    ("DEALREG_ADJUDICATOR_MAX_RECORDS", "0"), ("DEALREG_ADJUDICATOR_MAX_RECORDS", "-5"),
    ("DEALREG_ADJUDICATOR_MAX_RECORDS", "lots"),
    # A fat-fingered batch size: it used to pass and crash every batch of the embedded log
    # (SQLite LIMIT overflow), or make one Kafka transaction too large to finish in time.
    ("DEALREG_ADJUDICATOR_MAX_RECORDS", "20000000000000000000"),
    ("DEALREG_ADJUDICATOR_MAX_RECORDS", "1000000"),
    ("DEALREG_KAFKA_SESSION_TIMEOUT_MS", "0"), ("DEALREG_KAFKA_SESSION_TIMEOUT_MS", "5999"),
    ("DEALREG_KAFKA_SESSION_TIMEOUT_MS", "300001"), ("DEALREG_KAFKA_SESSION_TIMEOUT_MS", "30s")])
def test_an_impossible_drain_setting_is_one_line_and_exit_2(
        variable: str, value: str, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "dealreg", "dev",
                           "--data-dir", str(tmp_path / "d")],
                          capture_output=True, text=True, timeout=60,
                          env={**_clean_env(), "DEALREG_PORT": "1", variable: value})
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and variable in done.stderr, done.stderr
    assert not (tmp_path / "d").exists()

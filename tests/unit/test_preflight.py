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
    ("DEALREG_NOTIFICATION_SCHEDULE_SECONDS", "abc"), ("DEALREG_DATA_DIR", "/proc/nope"),
    # A broker list typo used to pass as "cannot reach Kafka" (exit 1, an outage).
    ("DEALREG_KAFKA_BOOTSTRAP_SERVERS", "kafka1:9092:x"),
    ("DEALREG_KAFKA_BOOTSTRAP_SERVERS", "kafka1:9092,,kafka2:9092"),
    ("DEALREG_KAFKA_BOOTSTRAP_SERVERS", "kafka1:http"),
    ("DEALREG_SHUTDOWN_TIMEOUT_SECONDS", "0")])
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


def _dealreg(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dealreg", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60,
                          env={**_clean_env(), "COLUMNS": "250", **env})


def _one_clear_line(done: subprocess.CompletedProcess[str], says: str) -> None:
    output = done.stdout + done.stderr
    assert "Traceback" not in output and "╭" not in output, output[-3000:]
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and says in errors[0], output[-3000:]


@pytest.mark.parametrize("command", [
    ("dev", "--port", "0"), ("projections", "rebuild"), ("export", "out.tar.gz"),
    ("poison", "list"), ("db", "upgrade"), ("migrate-to-kafka",)])
def test_a_damaged_data_directory_is_one_line_and_exit_1_for_every_command_that_opens_it(
        command: tuple[str, ...], tmp_path: Path) -> None:
    """A data directory whose log is not a SQLite file (a disk error, a file copied over
    it): every command used to print SQLite's "file is not a database" as a stack trace
    (`dev`: in its log, then "did not start")."""
    damaged = tmp_path / "data"
    damaged.mkdir()
    (damaged / "eventlog.sqlite3").write_bytes(b"these bytes are no database " * 200)
    done = _dealreg(tmp_path, *command, DEALREG_DATA_DIR=str(damaged))
    assert done.returncode == 1, done.stdout + done.stderr
    _one_clear_line(done, "is not a SQLite database")
    assert not (tmp_path / "out.tar.gz").exists()


def test_a_data_directory_that_takes_no_new_file_fails_dev_before_it_starts(
        tmp_path: Path) -> None:
    """SQLite writes -wal and -shm files beside the log: a directory that refuses them (a
    read-only mount; here one of /proc, which refuses even root) ended `dev` with a stack
    trace in its log."""
    done = _dealreg(tmp_path, "dev", "--port", "0", "--data-dir", "/proc/self")
    assert done.returncode == 2, done.stdout + done.stderr
    _one_clear_line(done, "is not writable")


def test_a_log_that_cannot_be_opened_is_one_clear_error_and_leaves_it_unlocked(
        tmp_path: Path) -> None:
    import asyncio

    from shared.eventlog.embedded import EmbeddedEventLog, EventLogUnavailable

    path = tmp_path / "eventlog.sqlite3"
    path.write_bytes(b"x" * 4096)

    async def start() -> None:
        await EmbeddedEventLog(path).start()

    for _ in range(2):  # the second start finds the lock free: the first let go of it
        with pytest.raises(EventLogUnavailable) as failed:
            asyncio.run(start())
        assert "not a database" in str(failed.value) and "dealreg import" in str(failed.value)


def test_poison_reads_settings_and_the_data_directory_as_every_command_does(
        tmp_path: Path) -> None:
    """`dealreg poison` read the settings by itself: invalid ones were a stack trace, a
    missing data directory was created empty (then a stack trace), an unknown id was
    printed in red but the log was never named."""
    bad = _dealreg(tmp_path, "poison", "list", DEALREG_TOPIC_PARTITIONS="0")
    assert bad.returncode == 2
    _one_clear_line(bad, "DEALREG_TOPIC_PARTITIONS")
    missing = _dealreg(tmp_path, "poison", "list")
    assert missing.returncode == 2
    _one_clear_line(missing, "no embedded data directory")
    assert not (tmp_path / "dealreg-data").exists()

    import asyncio

    from shared.eventlog.embedded import EmbeddedEventLog
    from shared.eventlog.topics import Topics

    async def create() -> None:
        log = EmbeddedEventLog(tmp_path / "data" / "eventlog.sqlite3")
        await log.start()
        await log.create_topics(Topics.named("dealreg").specs(3))
        await log.close()

    asyncio.run(create())
    listed = _dealreg(tmp_path, "poison", "list", "--json",
                      DEALREG_DATA_DIR=str(tmp_path / "data"))
    assert listed.returncode == 0 and listed.stdout.strip() == "[]", listed.stderr
    assert f"data directory {tmp_path / 'data'}" in listed.stderr
    unknown = _dealreg(tmp_path, "poison", "replay", "dl-nope",
                       DEALREG_DATA_DIR=str(tmp_path / "data"))
    assert unknown.returncode == 1
    _one_clear_line(unknown, "unknown dead-letter ids: dl-nope")


def test_an_export_into_a_directory_that_does_not_exist_is_one_line(tmp_path: Path) -> None:
    """It was a stack trace (FileNotFoundError of the staging directory)."""
    target = tmp_path / "no-such-dir" / "backup.tar.gz"
    done = _dealreg(tmp_path, "export", str(target))
    assert done.returncode == 2, done.stdout + done.stderr
    _one_clear_line(done, f"there is no directory {target.parent}")


@pytest.mark.parametrize("args, env", [
    (("--commands", "notaurl"), {}), (("--queries", "registration:8080"), {}),
    ((), {"DEALREG_GATEWAY_COMMANDS_URL": "ftp://registration"}),
    (("--queries", "http://"), {})])
def test_a_gateway_upstream_that_is_not_a_url_is_refused_at_start(
        args: tuple[str, ...], env: dict[str, str], tmp_path: Path) -> None:
    """It used to start, then answer every request routed there with an error."""
    done = _dealreg(tmp_path, "gateway", "--port", "0", *args, **env)
    assert done.returncode == 2, done.stdout + done.stderr
    _one_clear_line(done, "is not an http(s) base URL")

"""`deploy/docker-compose*.yml`, validated statically (no Docker engine here, so compose is
never run in CI): against the settings the code reads, the CLI it runs, the image's entry
point, and the deployment's promises (data in volumes, one published API port through the
gateway, one-shot migration and topics before the services)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import typer.main
import yaml

from dealreg.cli import app as cli_app
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted((ROOT / "deploy").glob("docker-compose*.yml"))
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:[:?\-+][^}]*)?\}")
THIRD_PARTY = {"kafka", "postgres"}  # images not built from our Dockerfile


def _load(path: Path) -> dict[str, Any]:
    return dict(yaml.safe_load(path.read_text()))  # `<<` merge keys resolved by PyYAML


def _ours(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose["services"].items()
            if s.get("image", "").startswith("dealreg") or "build" in s}


def test_there_is_a_compose_file() -> None:
    assert FILES, "deploy/docker-compose*.yml"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_dealreg_variable_is_a_setting_and_its_value_parses(path: Path) -> None:
    compose = _load(path)
    env_names = {f"DEALREG_{name.upper()}": name for name in Settings.model_fields}
    ours = _ours(compose)
    referenced = set(INTERPOLATION.findall(path.read_text()))
    assert {v for v in referenced if v.startswith("DEALREG_")} <= set(env_names)
    assert set(ours) >= {"migrate", "topics", "registration", "adjudication", "projections",
                         "gateway"}
    for name, service in ours.items():
        env = service.get("environment") or {}
        assert isinstance(env, dict), f"{name}: environment as a mapping"
        read = set(env_names) | _envvars(_resolve(service["command"]))
        unknown = {k for k in env if k.startswith("DEALREG_")} - read
        assert unknown == set(), f"{name} sets variables nothing it runs reads: {unknown}"
        values = {env_names[k]: str(v) for k, v in env.items()
                  if k in env_names and not INTERPOLATION.search(str(v))}
        Settings(**values)  # type: ignore[arg-type]  # raises on a value that cannot parse
        assert env.get("DEALREG_BACKEND") == "distributed", name


def _resolve(command: list[str]) -> Any:
    """The CLI's own parse of `command` (as the image's ENTRYPOINT `dealreg` receives it):
    the leaf command's context; raises if a command or argument does not exist or does not
    fit (typer's click: groups are told by `get_command`)."""
    cmd: Any = typer.main.get_command(cli_app)
    ctx = cmd.make_context("dealreg", [], resilient_parsing=True)
    args = list(command)
    while hasattr(cmd, "get_command"):
        assert args, f"{command}: names a group, not a command"
        sub = cmd.get_command(ctx, args[0])
        assert sub is not None, f"{command}: no command {args[0]!r} in the CLI"
        leaf = not hasattr(sub, "get_command")
        ctx = sub.make_context(args[0], args[1:] if leaf else [], parent=ctx,
                               resilient_parsing=not leaf)
        cmd, args = sub, args[1:]
    return ctx


def _envvars(ctx: Any) -> set[str]:
    """The variables a command reads through its own options (`envvar=`)."""
    found: set[str] = set()
    for param in ctx.command.params:
        names = param.envvar or ()
        found.update([names] if isinstance(names, str) else names)
    return found


def test_the_image_runs_the_cli() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r'^ENTRYPOINT \["dealreg"\]$', dockerfile, re.M)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_services_command_is_a_cli_command(path: Path) -> None:
    for name, service in _ours(_load(path)).items():
        command = service.get("command")
        assert isinstance(command, list) and command, f"{name}: an exec-form command"
        assert _resolve(command).command.name in command, name
    # The check can fail: a missing command, a service the CLI does not know.
    with pytest.raises(AssertionError):
        _resolve(["db", "downgrade"])
    with pytest.raises(Exception, match="billing"):
        _resolve(["serve", "billing"])


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_data_lives_in_declared_volumes_at_the_paths_the_stores_write(path: Path) -> None:
    compose = _load(path)
    declared = set(compose.get("volumes") or {})
    services = compose["services"]
    for name, service in services.items():
        for mount in service.get("volumes") or ():
            source = mount.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name} mounts undeclared volume {source}"
    kafka, postgres = services["kafka"], services["postgres"]
    assert kafka["environment"]["KAFKA_LOG_DIRS"] in {
        m.split(":")[1] for m in kafka["volumes"] if m.split(":")[0] in declared}
    pgdata = postgres.get("environment", {}).get("PGDATA", "/var/lib/postgresql/data")
    assert any(pgdata.startswith(m.split(":")[1]) for m in postgres["volumes"]
               if m.split(":")[0] in declared)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_the_api_is_published_on_one_port_through_the_gateway(path: Path) -> None:
    compose = _load(path)
    ours = _ours(compose)
    published = {name: s["ports"] for name, s in ours.items() if s.get("ports")}
    assert list(published) == ["gateway"] and len(published["gateway"]) == 1
    container_port = str(published["gateway"][0]).rsplit(":", 1)[-1]
    gateway = ours["gateway"]
    assert gateway["command"] == ["gateway"]
    assert gateway["environment"]["DEALREG_PORT"] == container_port
    assert gateway["environment"]["DEALREG_HOST"] == "0.0.0.0"
    for service in ours.values():
        for after in service.get("depends_on") or ():
            assert after in compose["services"], after


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_the_services_reach_kafka_and_postgres_where_they_listen(path: Path) -> None:
    compose = _load(path)
    services = compose["services"]
    kafka_env, pg_env = services["kafka"]["environment"], services["postgres"]["environment"]
    advertised = {urlsplit(u.split("://", 1)[1] and "x://" + u.split("://", 1)[1]).netloc
                  for u in kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")}
    for name, service in _ours(compose).items():
        env = service["environment"]
        for server in env["DEALREG_KAFKA_BOOTSTRAP_SERVERS"].split(","):
            assert server in advertised, f"{name}: {server} is not an advertised listener"
        url = urlsplit(env["DEALREG_DATABASE_URL"])
        assert url.scheme == "postgresql+asyncpg"
        assert (url.hostname, url.username, url.password, url.path.lstrip("/")) == (
            "postgres", pg_env["POSTGRES_USER"], pg_env["POSTGRES_PASSWORD"],
            pg_env["POSTGRES_DB"]), name

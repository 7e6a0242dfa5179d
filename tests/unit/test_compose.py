"""Structural checks of docker-compose.yml against the real CLI and settings.

No Docker is needed: the file is parsed with PyYAML and its commands and
environment are cross-checked with ``infq.cli.app`` and ``infq.settings.Settings``
so that renaming a subcommand, option or setting breaks this test, not a deploy.
"""

from __future__ import annotations

import re
import secrets
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from pydantic import ValidationError

from infq.cli import app
from infq.settings import Settings, explain_invalid

COMPOSE_FILE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
INFRA_SERVICES = ("kafka", "postgres", "redis", "minio")
INFQ_SERVICES = ("init", "dispatcher", "worker", "flower", "notifier", "api")


def _services() -> dict[str, dict[str, Any]]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert "version" not in data, "the compose spec has no top-level version key"
    services: dict[str, dict[str, Any]] = data["services"]
    return services


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the ["KEY=value", ...] form
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(key): str(value) for key, value in env.items()}


def _words(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else [str(w) for w in command]


def _subcommands(cmd: Any) -> dict[str, Any]:
    # Duck-typed: recent Typer vendors click, so its groups are not click.Group.
    commands: dict[str, Any] = getattr(cmd, "commands", None) or {}
    return commands


def _resolve(words: list[str]) -> tuple[Any, list[str]]:
    """Walk nested command groups along ``words``; return the command and leftovers."""
    cmd: Any = typer.main.get_command(app)
    rest = list(words)
    while rest and rest[0] in _subcommands(cmd):
        cmd = _subcommands(cmd)[rest.pop(0)]
    return cmd, rest


def test_all_services_present() -> None:
    assert set(INFRA_SERVICES + INFQ_SERVICES) <= set(_services())


def test_kafka_runs_in_kraft_mode() -> None:
    kafka = _services()["kafka"]
    assert kafka["image"].startswith("apache/kafka")
    env = _environment(kafka)
    assert "controller" in env["KAFKA_PROCESS_ROLES"].split(",")
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert "healthcheck" in kafka


def test_worker_reserves_nvidia_gpu() -> None:
    worker = _services()["worker"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    assert _environment(worker)["INFQ_DEVICE"] == "cuda"


def test_cli_has_the_service_commands() -> None:
    commands = _subcommands(typer.main.get_command(app))
    for name in INFQ_SERVICES:
        assert name in commands, f"`infq {name}` is not a CLI command"


@pytest.mark.parametrize("name", INFQ_SERVICES)
def test_command_matches_cli(name: str) -> None:
    words = _words(_services()[name])
    assert words[0] == "infq"
    cmd, rest = _resolve(words[1:])
    assert not _subcommands(cmd), f"{name}: {words} names a group, not a command"
    known = {opt for param in cmd.params for opt in param.opts + param.secondary_opts}
    for word in rest:
        if word.startswith("-"):
            assert word.split("=", 1)[0] in known, f"{name}: unknown option {word}"


@pytest.mark.parametrize("name", INFQ_SERVICES)
def test_infq_env_vars_are_settings(name: str) -> None:
    for key in _environment(_services()[name]):
        if key.startswith("INFQ_"):
            field = key.removeprefix("INFQ_").lower()
            assert field in Settings.model_fields, f"{name}: {key} is not a setting"


def test_service_ordering() -> None:
    services = _services()
    init_deps = services["init"]["depends_on"]
    for infra in INFRA_SERVICES:
        assert init_deps[infra]["condition"] == "service_healthy"
        assert "healthcheck" in services[infra]
    for name in ("dispatcher", "worker", "flower"):
        deps = services[name]["depends_on"]
        assert deps["init"]["condition"] == "service_completed_successfully"
        assert services[name]["image"] == services["init"]["image"] == "infq:latest"
        assert "build" not in services[name]
    assert "container_name" not in services["dispatcher"], "dispatcher must scale"


def test_flower_requires_auth() -> None:
    env = _environment(_services()["flower"])
    assert "FLOWER_UNAUTHENTICATED_API" not in env
    # What `infq flower` reads (INFQ_ENVIRONMENT=production refuses to run without it)
    assert env.get("INFQ_FLOWER_PASSWORD")


# ${NAME}, ${NAME:-default}, ${NAME:?message} as compose interpolates them ($$ escapes $).
_REFERENCE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:[-?])(?P<arg>[^}]*))?\}")
SECRETS = ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "MINIO_ROOT_PASSWORD", "INFQ_FLOWER_PASSWORD")


def _interpolate(value: str, environ: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        if environ.get(name):
            return environ[name]
        if op == ":?":
            raise LookupError(f"{name}: {arg}")
        return arg if op == ":-" else ""

    return _REFERENCE.sub(one, value.replace("$$", "\0")).replace("\0", "$")


def _references() -> list[tuple[str, str, str | None]]:
    """(name, operator, where) of every ${...} in the file."""
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    return [(m["name"], m["op"] or "", m["arg"]) for m in _REFERENCE.finditer(text)]


def test_no_secret_has_a_fallback() -> None:
    """A password with a default is a password every reader of this file knows."""
    used = {name for name, _, _ in _references()}
    assert set(SECRETS) <= used
    for name, op, _ in _references():
        if name in SECRETS:
            assert op == ":?", f"${{{name}}} must be required (`:?`), not `{op or 'bare'}`"
    for service in _services().values():
        for key, value in _environment(service).items():
            if any(word in key for word in ("PASSWORD", "SECRET", "DATABASE_URL", "BROKER_URL")):
                assert "${" in value, f"{key} is written into the file: {value}"


def test_an_unset_password_stops_compose_with_its_name() -> None:
    env = _environment(_services()["postgres"])
    with pytest.raises(LookupError, match=r"POSTGRES_PASSWORD: set POSTGRES_PASSWORD in \.env"):
        _interpolate(env["POSTGRES_PASSWORD"], {})


def test_flower_is_published_on_loopback_only() -> None:
    for port in _services()["flower"]["ports"]:
        assert str(port).startswith("127.0.0.1:"), port


def test_redis_requires_the_password_the_broker_url_carries() -> None:
    environ = {name: f"{name.lower()}-0f3a9c" for name in SECRETS}
    redis = _services()["redis"]
    command = " ".join(_words(redis))
    assert '--requirepass "$REDIS_PASSWORD"' in _interpolate(command, environ)
    redis_env = {k: _interpolate(v, environ) for k, v in _environment(redis).items()}
    assert redis_env["REDIS_PASSWORD"] == redis_env["REDISCLI_AUTH"] == environ["REDIS_PASSWORD"]
    broker = _interpolate(_environment(_services()["worker"])["INFQ_BROKER_URL"], environ)
    assert broker == f"redis://:{environ['REDIS_PASSWORD']}@redis:6379/0"


def _production_settings(monkeypatch: pytest.MonkeyPatch, environ: dict[str, str]) -> Settings:
    """Settings as a compose service of the infq image would build them."""
    service = _environment(_services()["flower"])
    for key, value in service.items():
        if key.startswith("INFQ_"):
            monkeypatch.setenv(key, _interpolate(value, environ))
    return Settings()


def test_generated_passwords_start_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    environ = {name: secrets.token_hex(24) for name in SECRETS}
    settings = _production_settings(monkeypatch, environ)
    assert settings.environment.value == "production"
    assert environ["POSTGRES_PASSWORD"] in settings.database


def test_the_former_defaults_are_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """The values this file used to fall back to, set by hand: the process stops with one
    line naming every variable (and no value)."""
    environ = {"POSTGRES_PASSWORD": "infq", "REDIS_PASSWORD": "change-me",
               "MINIO_ROOT_PASSWORD": "infq-secret-key",
               "INFQ_FLOWER_PASSWORD": "change-me"}  # fmt: skip
    with pytest.raises(ValidationError) as caught:
        _production_settings(monkeypatch, environ)
    line = explain_invalid(caught.value)
    assert line is not None
    assert "\n" not in line
    for name in ("INFQ_DATABASE_URL", "INFQ_BROKER_URL", "INFQ_S3_SECRET_ACCESS_KEY",
                 "INFQ_FLOWER_PASSWORD"):  # fmt: skip
        assert name in line
    assert "change-me" not in line
    assert "infq-secret-key" not in line

"""Structural checks of docker-compose.yml against the real CLI and settings.

No Docker is needed: the file is parsed with PyYAML and its commands and
environment are cross-checked with ``infq.cli.app`` and ``infq.settings.Settings``
so that renaming a subcommand, option or setting breaks this test, not a deploy.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from infq.cli import app
from infq.settings import Settings

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

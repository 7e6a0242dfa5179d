"""Where :class:`infq.settings.Settings` takes its values from, and what it refuses."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from infq.errors import ConfigurationError, UnknownSetting
from infq.settings import (
    Environment,
    Settings,
    explain_invalid,
    refuse_unknown_variables,
    variable_names,
)


@pytest.fixture
def stack_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A clean environment: no INFQ_* vars, and a stack dir that holds no stack.json yet."""
    for name in list(os.environ):
        if name.upper().startswith("INFQ_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "stack"
    folder.mkdir()
    monkeypatch.setenv("INFQ_STACK_DIR", str(folder))
    return folder


def _record_stack(stack_dir: Path, urls: dict[str, Any]) -> None:
    (stack_dir / "stack.json").write_text(json.dumps({"urls": urls}), encoding="utf-8")


def test_env_vars_with_the_prefix_override_defaults(
    stack_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INFQ_MAX_BATCH_SIZE", "8")
    monkeypatch.setenv("INFQ_KAFKA_BOOTSTRAP", "broker:9092")
    monkeypatch.setenv("MAX_WAIT_MS", "999")  # no prefix: ignored

    settings = Settings()

    assert settings.stack_dir == stack_dir
    assert settings.max_batch_size == 8
    assert settings.max_wait_ms == 50
    assert settings.kafka == "broker:9092"


def test_an_out_of_range_env_value_is_refused(
    stack_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INFQ_MAX_BATCH_SIZE", "0")
    with pytest.raises(ValidationError, match="max_batch_size"):
        Settings()


def test_an_unknown_setting_is_refused(stack_dir: Path) -> None:
    typo: dict[str, Any] = {"max_batch_sise": 8}
    with pytest.raises(ValidationError, match="max_batch_sise"):
        Settings(**typo)


def test_require_names_the_env_var_when_nothing_is_set(stack_dir: Path) -> None:
    settings = Settings()
    assert settings.kafka_bootstrap is None
    with pytest.raises(ConfigurationError, match="INFQ_KAFKA_BOOTSTRAP") as caught:
        _ = settings.kafka
    assert str(stack_dir / "stack.json") in str(caught.value)
    with pytest.raises(ConfigurationError, match="INFQ_DATABASE_URL"):
        _ = settings.database


def test_recorded_stack_urls_fill_unset_values(stack_dir: Path) -> None:
    _record_stack(stack_dir, {"kafka_bootstrap": "h:1", "broker_url": "redis://h:2/0"})
    settings = Settings()
    assert settings.kafka == "h:1"
    assert settings.broker == "redis://h:2/0"
    assert settings.database_url is None


def test_env_wins_over_the_recorded_stack(stack_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _record_stack(stack_dir, {"kafka_bootstrap": "h:1"})
    monkeypatch.setenv("INFQ_KAFKA_BOOTSTRAP", "env:9")
    assert Settings().kafka == "env:9"


def test_unknown_or_unreadable_stack_files_are_ignored(stack_dir: Path) -> None:
    _record_stack(stack_dir, {"kafka_bootstrap": "h:1", "not_a_setting": "x"})
    assert Settings().kafka == "h:1"
    (stack_dir / "stack.json").write_text("{not json", encoding="utf-8")
    assert Settings().kafka_bootstrap is None


def test_stack_json_in_another_folder_is_not_read(stack_dir: Path, tmp_path: Path) -> None:
    # The default .infq/ of the working directory is not consulted once INFQ_STACK_DIR is set.
    (tmp_path / ".infq").mkdir()
    _record_stack(tmp_path / ".infq", {"kafka_bootstrap": "h:1"})
    assert Settings().kafka_bootstrap is None


def test_production_without_service_urls_is_refused(
    stack_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INFQ_ENVIRONMENT", "production")
    monkeypatch.setenv("INFQ_KAFKA_BOOTSTRAP", "kafka:9092")
    with pytest.raises(ValidationError) as caught:
        Settings()
    message = str(caught.value)
    assert "INFQ_DATABASE_URL" in message
    assert "INFQ_BROKER_URL" in message
    assert "INFQ_KAFKA_BOOTSTRAP" not in message


def _production(monkeypatch: pytest.MonkeyPatch, **variables: str) -> None:
    """A production environment with every service URL set (and secrets of its own)."""
    given = {
        "INFQ_ENVIRONMENT": "production",
        "INFQ_KAFKA_BOOTSTRAP": "kafka:9092",
        "INFQ_DATABASE_URL": "postgresql+psycopg://db/infq",
        "INFQ_BROKER_URL": "redis://:s3cr3t-from-vault@redis:6379/0",
    }
    for name, value in {**given, **variables}.items():
        monkeypatch.setenv(name, value)


def test_production_with_service_urls_is_accepted(
    stack_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _production(monkeypatch)
    settings = Settings()
    assert settings.environment is Environment.PRODUCTION
    assert settings.database == "postgresql+psycopg://db/infq"


@pytest.mark.parametrize(
    ("variable", "value", "refused"),
    [
        ("INFQ_DATABASE_URL", "postgresql+psycopg://infq:infq@postgres:5432/infq",
         "INFQ_DATABASE_URL carries a published default password"),
        ("INFQ_BROKER_URL", "redis://redis:6379/0",
         "INFQ_BROKER_URL names a remote Redis without a password"),
        ("INFQ_S3_SECRET_ACCESS_KEY", "infq-secret-key",
         "INFQ_S3_SECRET_ACCESS_KEY is a published default"),
        ("INFQ_FLOWER_PASSWORD", "change-me", "INFQ_FLOWER_PASSWORD is a published default"),
        ("INFQ_FLOWER_PASSWORD", "CHANGE-ME", "INFQ_FLOWER_PASSWORD is a published default"),
    ],
)  # fmt: skip
def test_production_refuses_a_published_default_secret(
    stack_dir: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, refused: str
) -> None:
    """What compose and the k8s example shipped passes "a password is set"; production
    refuses it with one line naming the variable, and never echoes the secret."""
    _production(monkeypatch, **{variable: value})
    with pytest.raises(ValidationError) as caught:
        Settings()
    # The one line an entry point prints (infq/cli/exits.py): the variable, not the value.
    assert explain_invalid(caught.value) == f"production refuses {refused}"


def test_a_local_stack_may_keep_its_defaults(
    stack_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INFQ_DATABASE_URL", "postgresql+psycopg://infq:infq@postgres:5432/infq")
    monkeypatch.setenv("INFQ_BROKER_URL", "redis://redis:6379/0")
    monkeypatch.setenv("INFQ_FLOWER_PASSWORD", "change-me")
    assert Settings().environment is Environment.LOCAL


def test_production_ignores_a_local_stack_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack_dir = tmp_path / "stack"
    stack_dir.mkdir()
    (stack_dir / "stack.json").write_text('{"urls": {"kafka_bootstrap": "127.0.0.1:1"}}')
    monkeypatch.chdir(tmp_path)
    for name in ("INFQ_KAFKA_BOOTSTRAP", "INFQ_DATABASE_URL", "INFQ_BROKER_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("INFQ_STACK_DIR", str(stack_dir))
    monkeypatch.setenv("INFQ_ENVIRONMENT", "production")
    with pytest.raises(ValueError, match="production needs explicit service URLs"):
        Settings()


def test_stack_dir_given_as_argument_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack_dir = tmp_path / "other"
    stack_dir.mkdir()
    (stack_dir / "stack.json").write_text('{"urls": {"kafka_bootstrap": "h:2"}}')
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("INFQ_KAFKA_BOOTSTRAP", raising=False)
    monkeypatch.delenv("INFQ_STACK_DIR", raising=False)
    assert Settings(stack_dir=stack_dir).kafka == "h:2"


def test_an_unknown_env_variable_is_refused_with_the_name_it_resembles(
    stack_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INFQ_MAX_BATCH_SIZ", "8")
    with pytest.raises(UnknownSetting) as caught:
        Settings()
    assert str(caught.value) == (
        "unknown setting INFQ_MAX_BATCH_SIZ; did you mean INFQ_MAX_BATCH_SIZE?"
    )
    assert caught.value.suggestions == {"INFQ_MAX_BATCH_SIZ": "INFQ_MAX_BATCH_SIZE"}
    assert isinstance(caught.value, ConfigurationError)


def test_unknown_env_variables_without_a_close_name_point_at_the_table(
    stack_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INFQ_BANANA", "1")
    monkeypatch.setenv("infq_max_wait_m", "5")  # names are case-insensitive, as pydantic's
    with pytest.raises(UnknownSetting) as caught:
        Settings()
    message = str(caught.value)
    assert message.startswith("unknown settings INFQ_BANANA, infq_max_wait_m; did you mean")
    assert "INFQ_MAX_WAIT_MS?" in message
    assert "docs/configuration.md" in message


def test_every_setting_and_the_external_variables_are_accepted(
    stack_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("infq_max_batch_size", "8")  # lower case is the same variable
    refuse_unknown_variables({name: "x" for name in variable_names()})
    assert Settings().max_batch_size == 8
    monkeypatch.setattr("infq.settings.EXTERNAL_VARIABLES", frozenset({"INFQ_READ_ELSEWHERE"}))
    monkeypatch.setenv("INFQ_READ_ELSEWHERE", "1")
    Settings()


def test_every_infq_variable_the_repository_uses_is_a_setting_or_allowed() -> None:
    # The deployment files, CI, stack/test/benchmark helpers: whatever sets an INFQ_*
    # variable there must name one Settings reads, or every infq process would refuse to
    # start. Prefixes in prose (INFQ_AUTOSCALE_*) end in "_" and are not variables.
    root = Path(__file__).resolve().parents[2]
    skip = {".git", ".venv", ".infq", ".mypy_cache", ".ruff_cache", ".pytest_cache",
            ".hypothesis", "__pycache__", "infq.egg-info"}  # fmt: skip
    known = set(variable_names())
    found: dict[str, str] = {}
    for path in root.rglob("*"):
        if skip & set(path.relative_to(root).parts) or not path.is_file():
            continue
        if path == Path(__file__).resolve():
            continue  # this file's own misspellings
        if path.suffix not in {".py", ".yml", ".yaml", ".toml", ".md", ".json", ".sh", ""}:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for name in re.findall(r"\bINFQ_[A-Z0-9_]*[A-Z0-9]\b", text):
            found.setdefault(name, str(path.relative_to(root)))
    # A Python constant, not a variable; and the misspelling the README shows refused.
    for name in ("INFQ_SERVICES", "INFQ_MAX_BATCH_SIZ"):
        found.pop(name, None)
    unknown = {name: where for name, where in found.items() if name not in known}
    assert unknown == {}


def test_a_refused_value_is_explained_by_its_variable(
    stack_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INFQ_MAX_BATCH_SIZE", "0")
    monkeypatch.setenv("INFQ_DATABASE_URL", "postgresql://u:secret@h/db")
    monkeypatch.setenv("INFQ_FLOWER_PORT", "not-a-port")
    with pytest.raises(ValidationError) as caught:
        Settings()
    line = explain_invalid(caught.value)
    assert line is not None
    assert "INFQ_MAX_BATCH_SIZE=0: Input should be greater than or equal to 1" in line
    assert "INFQ_FLOWER_PORT=not-a-port:" in line
    assert "secret" not in line


def test_a_refusal_across_settings_keeps_its_own_words(
    stack_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INFQ_AUTOSCALE_MIN_WORKERS", "5")
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert explain_invalid(caught.value) == (
        "INFQ_AUTOSCALE_MIN_WORKERS exceeds INFQ_AUTOSCALE_MAX_WORKERS"
    )


def test_validation_errors_of_other_models_are_not_about_settings() -> None:
    from schemas.jobs import JobRequest

    with pytest.raises(ValidationError) as caught:
        JobRequest.model_validate({"model": "echo"})
    assert explain_invalid(caught.value) is None

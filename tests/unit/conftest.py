"""Fixtures shared by the unit tests that run infq with its services down.

Services are pointed at ports nothing listens on: the app and the CLI start (nothing
connects at startup or import), and what they say while everything is down is the
point of those tests.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from infq.settings import Settings
from infq.stack.processes import free_port


def _offline_urls() -> dict[str, str]:
    """A URL per service, each at a free port (so nothing answers)."""
    return {
        "database_url": f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/infq",
        "kafka_bootstrap": f"127.0.0.1:{free_port()}",
        "broker_url": f"redis://127.0.0.1:{free_port()}/0",
        "s3_endpoint_url": f"http://127.0.0.1:{free_port()}",
    }


@pytest.fixture
def make_offline_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Callable[..., Settings]:
    """Builds settings whose four services listen nowhere, with ``overrides`` on top; no
    ``INFQ_*`` variable of the environment running the tests leaks in."""
    for name in list(os.environ):
        if name.upper().startswith("INFQ_"):
            monkeypatch.delenv(name)

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "stack_dir": tmp_path,
            **_offline_urls(),
            "s3_access_key_id": "k",
            "s3_secret_access_key": "s",
        }
        return Settings(**{**values, **overrides})

    return make


@pytest.fixture
def offline_settings(make_offline_settings: Callable[..., Settings]) -> Settings:
    """Settings whose four services listen nowhere."""
    return make_offline_settings()


@pytest.fixture
def stack_down(tmp_path: Path) -> dict[str, str]:
    """An environment for ``python -m infq`` whose recorded local stack listens nowhere
    (as after a reboot): no ``INFQ_*`` variable but the stack folder."""
    (tmp_path / "stack.json").write_text(json.dumps({"services": {}, "urls": _offline_urls()}))
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("INFQ_")}
    return {**env, "INFQ_STACK_DIR": str(tmp_path)}

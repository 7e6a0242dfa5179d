"""The chaos suite's own local stack (it kills and restarts services, so it never shares
them with the integration tests) and the table every scenario adds its row to."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from infq.settings import Settings
from infq.stack.supervisor import Stack
from tests.chaos.world import Row, World
from tests.integration.harness import settings_for

ROOT = Path(__file__).resolve().parents[2]
STACK_DIR = ROOT / ".infq" / "chaos-stack"
LOG_DIR = STACK_DIR / "logs"
REPORT = ROOT / ".infq" / "chaos-report.json"

ROWS: list[Row] = []


@pytest.fixture(scope="session")
def chaos_stack() -> Iterator[Stack]:
    """Start (or reuse) the chaos stack; stopped at the end if this session started it."""
    stack = Stack(STACK_DIR)
    states = stack.up()
    yield stack
    if all(s.started_now for s in states):
        stack.down()


@pytest.fixture(scope="session")
def chaos_env(chaos_stack: Stack) -> dict[str, str]:
    """What every process of the chaos suite starts with."""
    del chaos_stack
    return {
        "INFQ_STACK_DIR": str(STACK_DIR),
        "INFQ_WEBHOOK_ALLOW": '["127.0.0.0/8"]',
        "HF_HUB_OFFLINE": "1",
    }


@pytest.fixture(scope="session")
def chaos_base(chaos_env: dict[str, str]) -> Settings:
    """Settings of the chaos stack itself (worlds derive theirs from it)."""
    return settings_for(chaos_env)


@pytest.fixture
def world_factory(chaos_env: dict[str, str], chaos_base: Settings) -> Iterator[list[World]]:
    """Worlds made by a test, closed after it."""
    del chaos_env, chaos_base
    worlds: list[World] = []
    yield worlds
    for w in worlds:
        w.close()


@pytest.fixture
def record_row() -> Iterator[list[Row]]:
    """Rows a scenario adds to the table (kept even when its assertions fail)."""
    rows: list[Row] = []
    yield rows
    ROWS.extend(rows)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the chaos table and write it as JSON beside the stack."""
    if not ROWS:
        return
    columns = ["scenario", "submitted", "final", "stuck", "lost", "computed_twice",
               "duplicate_events", "missing_events", "orphaned_objects", "recover_s"]  # fmt: skip
    terminalreporter.section("chaos table")
    terminalreporter.write_line(" | ".join(columns))
    for row in ROWS:
        values = row.as_dict()
        values["final"] = ", ".join(f"{k} {v}" for k, v in sorted(row.final.items()))
        terminalreporter.write_line(" | ".join(str(values[c]) for c in columns))
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps([r.as_dict() for r in ROWS], indent=2))

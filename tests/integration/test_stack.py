"""The local stack is idempotent and reports health."""

from __future__ import annotations

import pytest

from infq.stack.supervisor import Stack
from tests.integration.conftest import STACK_DIR

pytestmark = pytest.mark.integration


def test_second_up_finds_the_running_stack(stack_env: dict[str, str]) -> None:
    stack = Stack(STACK_DIR)
    before = {s.name: (s.pid, s.port) for s in stack.status()}
    states = stack.up()
    assert not any(s.started_now for s in states)
    assert {s.name: (s.pid, s.port) for s in states} == before
    assert all(s.healthy for s in stack.status())
    assert set(before) == {"kafka", "postgres", "redis", "s3"}

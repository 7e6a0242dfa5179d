"""The Celery message between scheduler and worker (:mod:`infq.bus.messages`)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from infq.bus.messages import WorkItem, celery_priority

json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=10)
work_items = st.builds(
    WorkItem,
    job_id=st.uuids().map(str),
    model=st.text(min_size=1, max_size=20),
    task=st.text(min_size=1, max_size=10),
    text=st.text(max_size=50),
    params=st.dictionaries(st.text(max_size=8), json_scalars, max_size=5),
    revision=st.text(max_size=12),
)


@given(work_items)
def test_work_item_survives_the_json_wire(item: WorkItem) -> None:
    wire = json.loads(json.dumps(item.to_wire()))
    assert WorkItem.from_wire(wire) == item


@pytest.mark.parametrize("params", [None, "absent"])
def test_from_wire_defaults_missing_params_to_empty(params: Any) -> None:
    wire: dict[str, Any] = {"job_id": "j", "model": "echo", "task": "echo", "text": "t"}
    if params != "absent":
        wire["params"] = params
    assert WorkItem.from_wire(wire).params == {}


def test_from_wire_refuses_a_message_without_a_job_id() -> None:
    with pytest.raises(KeyError, match="job_id"):
        WorkItem.from_wire({"model": "echo", "task": "echo", "text": "t"})


def test_celery_priority_reverses_infq_priority() -> None:
    assert celery_priority(0) == 9
    assert celery_priority(9) == 0
    assert [celery_priority(p) for p in range(10)] == list(range(9, -1, -1))

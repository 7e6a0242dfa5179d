"""The cache key and admission planning: pure rules of precomputed answers."""

from __future__ import annotations

import unicodedata
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from infq.cache.key import cache_key
from infq.catalogue.catalogue import Catalogue, builtin_entries
from infq.db.models import CachedResult
from infq.dispatch.admission import plan
from infq.dispatch.triage import Accepted, Limits, Record, triage

BASE: dict[str, Any] = {
    "model": "m",
    "revision": "r1",
    "task": "embed",
    "params": {"a": 1, "b": [1, 2]},
    "text": "hello",
    "tenant": "t",
}


def key(**changes: Any) -> str:
    return cache_key(**{**BASE, **changes})


def test_key_is_stable_and_hex_sha256() -> None:
    assert key() == key()
    assert len(key()) == 64
    int(key(), 16)


def test_param_order_does_not_matter() -> None:
    assert key(params={"b": [1, 2], "a": 1}) == key()


def test_nfc_and_nfd_spellings_share_a_key() -> None:
    text = "café"
    assert key(text=unicodedata.normalize("NFD", text)) == key(text=text)


def test_every_field_changes_the_key() -> None:
    changed = [
        key(model="m2"),
        key(revision="r2"),
        key(task="echo"),
        key(params={"a": 2, "b": [1, 2]}),
        key(text="hello "),
        key(text="Hello"),
        key(tenant="u"),
        key(tenant=None),
    ]
    assert len({key(), *changed}) == len(changed) + 1


@given(st.text(max_size=20), st.text(max_size=20), st.text(max_size=20), st.text(max_size=20))
def test_no_two_field_splits_collide(a: str, b: str, c: str, d: str) -> None:
    # Length prefixes: moving characters between fields always changes the key.
    if (a, b) != (c, d):
        assert key(model=a, task=b) != key(model=c, task=d)


def _records(texts: list[str]) -> list[Record]:
    return [
        Record(
            "t",
            0,
            n,
            1_700_000_000_000,
            orjson.dumps({"job_id": str(uuid.uuid4()), "model": "echo", "input": {"text": t}}),
        )
        for n, t in enumerate(texts)
    ]


def test_plan_hits_leaders_and_followers() -> None:
    accepted, _ = triage(
        _records(["a", "b", "a", "c", "b"]),
        catalogue=Catalogue(builtin_entries()),
        limits=Limits(max_record_bytes=1 << 20, max_input_bytes=100),
    )
    by_text: dict[str, list[Accepted]] = {}
    for a in accepted:
        by_text.setdefault(a.request.input.text, []).append(a)
    cached_c = CachedResult(
        cache_key=by_text["c"][0].cache_key,
        model="echo",
        model_revision="echo-1",
        task="echo",
        result_inline={"text": "c", "length": 1},
        source_job_id=uuid.uuid4(),
    )
    in_flight = uuid.uuid4()
    b_key = by_text["b"][0].cache_key
    assert b_key is not None
    admission = plan(
        accepted,
        leaders={b_key: in_flight},
        cached={cached_c.cache_key: cached_c},
        now=datetime.now(UTC),
    )
    rows = {r["job_id"]: r for r in admission.rows}
    # "c" is answered from the cache
    c_row = rows[by_text["c"][0].job_id]
    assert c_row["status"] == "succeeded"
    assert c_row["cache_hit"] is True
    assert c_row["result_inline"] == {"text": "c", "length": 1}
    assert admission.hits == [by_text["c"][0].job_id]
    # both "b" jobs wait for the job already in flight
    assert all(rows[a.job_id]["coalesced_into"] == in_flight for a in by_text["b"])
    # the first "a" leads, the second follows it
    first_a, second_a = by_text["a"]
    assert "coalesced_into" not in rows[first_a.job_id]
    assert rows[second_a.job_id]["coalesced_into"] == first_a.job_id
    assert set(admission.followers) == {second_a.job_id, *(a.job_id for a in by_text["b"])}
    assert rows[first_a.job_id]["status"] == "queued"

"""The filesystem result store (:class:`infq.results.files.FileResultStore`) in a tmp folder."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from infq.errors import InfqError
from infq.results.files import FileResultStore
from infq.results.layout import build_body, encode_value, parse_line
from infq.results.store import ResultStoreError


@pytest.fixture
def store(tmp_path: Path) -> FileResultStore:
    return FileResultStore(tmp_path / "results-root")


def test_put_then_get_range_round_trips_each_job_line(store: FileResultStore) -> None:
    entries = [(uuid.uuid4(), {"text": "héllo", "n": i}) for i in range(3)]
    body, spans = build_body([(job_id, encode_value(result)) for job_id, result in entries])

    uri = store.put("results/2026/01/05/batch.jsonl", body)

    assert uri.startswith("file://")
    assert (store.root / "results/2026/01/05/batch.jsonl").read_bytes() == body
    for span, (_, result) in zip(spans, entries, strict=True):
        line = store.get_range(uri, offset=span.offset, length=span.length)
        assert parse_line(line) == result


def test_put_replaces_an_existing_object_and_leaves_no_temp_file(store: FileResultStore) -> None:
    store.put("k.jsonl", b"old contents")
    uri = store.put("k.jsonl", b"new")
    assert store.get_range(uri, offset=0, length=100) == b"new"
    assert sorted(p.name for p in store.root.iterdir()) == ["k.jsonl"]


def test_ensure_ready_creates_the_root(store: FileResultStore) -> None:
    assert not store.root.exists()
    store.ensure_ready()
    assert store.root.is_dir()


def test_uri_outside_the_root_is_refused(store: FileResultStore, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"not a result")
    store.ensure_ready()

    for uri in (secret.as_uri(), f"{store.root.as_uri()}/../secret.txt"):
        with pytest.raises(ResultStoreError) as caught:
            store.get_range(uri, offset=0, length=4)
        assert caught.value.uri == uri
        assert "outside the store root" in str(caught.value)


@pytest.mark.parametrize("uri", ["s3://bucket/results/x.jsonl", "/plain/path.jsonl"])
def test_non_file_uri_is_refused(store: FileResultStore, uri: str) -> None:
    with pytest.raises(ResultStoreError, match="not a file:// uri") as caught:
        store.get_range(uri, offset=0, length=1)
    assert isinstance(caught.value, InfqError)
    assert caught.value.uri == uri


def test_root_with_a_space_round_trips(tmp_path: Path) -> None:
    store = FileResultStore(tmp_path / "my results")
    uri = store.put("batch.jsonl", b"line")
    assert store.get_range(uri, offset=0, length=4) == b"line"


def test_put_refuses_a_key_that_leaves_the_root(store: FileResultStore, tmp_path: Path) -> None:
    with pytest.raises(ResultStoreError):
        store.put("../escaped.jsonl", b"x")
    assert not (tmp_path / "escaped.jsonl").exists()

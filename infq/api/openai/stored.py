"""A stored file read back a chunk at a time (a download, a batch's input lines): a file
of any size is never held whole in memory."""

from __future__ import annotations

from collections.abc import Iterator

from infq.results.store import ResultStore

READ_CHUNK_BYTES = 1024 * 1024


def chunks(store: ResultStore, uri: str, size_bytes: int) -> Iterator[bytes]:
    """The object's bytes, :data:`READ_CHUNK_BYTES` at a time (ranged GETs)."""
    for offset in range(0, size_bytes, READ_CHUNK_BYTES):
        yield store.get_range(uri, offset=offset, length=min(READ_CHUNK_BYTES, size_bytes - offset))


def lines_of(store: ResultStore, uri: str, size_bytes: int) -> Iterator[tuple[int, bytes]]:
    """(line number from 1, bytes without the newline) of a stored file."""
    number, rest = 0, b""
    for chunk in chunks(store, uri, size_bytes):
        *complete, rest = (rest + chunk).split(b"\n")
        for raw in complete:
            number += 1
            yield number, raw
    if rest:
        yield number + 1, rest

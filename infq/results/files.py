"""Result payloads as files under a folder: for single-machine use and unit tests."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlparse
from urllib.request import url2pathname

from infq.results.store import ResultStoreError


class FileResultStore:
    """Payloads as files under a root folder: for single-machine use and unit tests."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _key_path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise ResultStoreError(key, f"key leaves the store root {self.root}")
        return path

    def uri_of(self, key: str) -> str:
        """The ``file://`` uri of ``key``."""
        return self._key_path(key).as_uri()

    def delete(self, uri: str) -> None:
        """Remove the file if it exists."""
        self._path_of(uri).unlink(missing_ok=True)

    def folders(self, prefix: str) -> list[str]:
        """The sub-folders of ``prefix`` (a key prefix ending in ``/``)."""
        base = self._key_path(prefix.rstrip("/"))
        if not base.is_dir():
            return []
        return sorted(f"{prefix}{p.name}/" for p in base.iterdir() if p.is_dir())

    def delete_under(self, prefix: str, *, limit: int) -> int:
        """Delete up to ``limit`` files under the folder ``prefix``, and the folder once
        it holds none."""
        base = self._key_path(prefix.rstrip("/"))
        if not base.is_dir():
            return 0
        files = list(itertools.islice((p for p in base.rglob("*") if p.is_file()), limit))
        for path in files:
            path.unlink(missing_ok=True)
        if len(files) < limit:
            shutil.rmtree(base, ignore_errors=True)
        return len(files)

    def put(self, key: str, body: bytes) -> str:
        """Write atomically (temp file + rename) so readers never see half a batch."""
        path = self._key_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(body)
        tmp.replace(path)
        return path.as_uri()

    def _path_of(self, uri: str) -> Path:
        parsed = urlparse(uri)
        if parsed.scheme != "file":
            raise ResultStoreError(uri, "not a file:// uri")
        if parsed.netloc not in ("", "localhost"):
            raise ResultStoreError(uri, "file uri on another host")
        path = Path(url2pathname(parsed.path))
        if self.root not in path.resolve().parents:
            raise ResultStoreError(uri, f"outside the store root {self.root}")
        return path

    def get_range(self, uri: str, *, offset: int, length: int) -> bytes:
        """Read the span from the file."""
        path = self._path_of(uri)
        with path.open("rb") as f:
            f.seek(offset)
            return f.read(length)

    def get(self, uri: str) -> bytes:
        """Read the whole file."""
        path = self._path_of(uri)
        return path.read_bytes()

    def download(self, uri: str, file: BinaryIO) -> None:
        """Copy the file into ``file`` in chunks."""
        with self._path_of(uri).open("rb") as source:
            shutil.copyfileobj(source, file)

    def put_file(self, key: str, file: BinaryIO) -> str:
        """Copy the file under the root."""
        return self.put(key, file.read())

    def ensure_ready(self) -> None:
        """Create the root folder."""
        self.root.mkdir(parents=True, exist_ok=True)

    def presign(self, uri: str, *, expires_s: int = 3600) -> str:
        """The file's own uri: a local folder needs no signature."""
        del expires_s
        self._path_of(uri)
        return uri

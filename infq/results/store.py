"""Where result payloads live: an interface and its adapters (S3, local filesystem).

Both adapters speak ``uri`` strings (``s3://bucket/key`` or ``file:///path``) so a
job row's pointer says which adapter reads it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol
from urllib.parse import urlparse
from urllib.request import url2pathname

from infq.errors import InfqError

if TYPE_CHECKING:
    from infq.settings import Settings

# botocore's own default for connecting and for each read.
BOTOCORE_TIMEOUT_S = 60.0


class ResultStoreError(InfqError):
    """A payload could not be written or read."""

    def __init__(self, uri: str, message: str) -> None:
        super().__init__(f"{uri}: {message}")
        self.uri = uri


class ResultStoreRefused(ResultStoreError):
    """S3 answered, and will answer the same again: the bucket is missing, or these
    credentials may not write it. Retrying cannot help; the jobs fail with the reason."""

    def __init__(self, uri: str, code: str, message: str) -> None:
        super().__init__(uri, f"{code}: {message}")
        self.code = code


# S3 error codes no retry can change (bucket, credentials, policy).
PERMANENT_CODES = frozenset({
    "AccessDenied", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch",
    "NoSuchBucket", "InvalidBucketName", "AccountProblem", "InvalidObjectState",
})  # fmt: skip


class ResultStore(Protocol):
    """Writes whole batch objects and reads byte ranges of them."""

    def uri_of(self, key: str) -> str:
        """The uri an object stored under ``key`` has (known before it is written)."""
        ...

    def put(self, key: str, body: bytes) -> str:
        """Store ``body`` under ``key``; returns its uri."""
        ...

    def delete(self, uri: str) -> None:
        """Remove the object at ``uri`` if it exists."""
        ...

    def get_range(self, uri: str, *, offset: int, length: int) -> bytes:
        """``length`` bytes of the object at ``uri`` starting at ``offset``."""
        ...

    def ensure_ready(self) -> None:
        """Create the bucket/folder if needed (called by ``infq init``)."""
        ...

    def get(self, uri: str) -> bytes:
        """The whole object at ``uri``."""
        ...

    def put_file(self, key: str, file: BinaryIO) -> str:
        """Store a (possibly large) file under ``key``, streaming; returns its uri."""
        ...

    def download(self, uri: str, file: BinaryIO) -> None:
        """Write the object at ``uri`` into ``file``, streaming (never whole in memory)."""
        ...

    def presign(self, uri: str, *, expires_s: int = 3600) -> str:
        """A URL anyone holding it can GET the object at, for ``expires_s``."""
        ...


class S3ResultStore:
    """S3 or any S3-compatible endpoint (MinIO, moto) through boto3."""

    def __init__(self, client: Any, *, bucket: str) -> None:
        self._client = client
        self.bucket = bucket

    @classmethod
    def from_settings(
        cls, settings: Settings, *, attempts: int = 5, timeout_s: float | None = None
    ) -> S3ResultStore:
        """Build the boto3 client from settings (no network call yet). ``timeout_s``
        bounds connecting and each read."""
        import boto3
        from botocore.config import Config

        secret = settings.s3_secret_access_key
        timeout = BOTOCORE_TIMEOUT_S if timeout_s is None else timeout_s
        client = boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
            aws_access_key_id=settings.s3_access_key_id,
            aws_secret_access_key=secret.get_secret_value() if secret else None,
            config=Config(
                retries={"max_attempts": attempts, "mode": "standard"},
                connect_timeout=timeout,
                read_timeout=timeout,
            ),
        )
        return cls(client, bucket=settings.s3_bucket)

    def uri_of(self, key: str) -> str:
        """The uri ``put(key, ...)`` returns."""
        return f"s3://{self.bucket}/{key}"

    def put(self, key: str, body: bytes) -> str:
        """One PUT for a whole worker batch; :class:`ResultStoreRefused` when S3 refuses
        it for good (see :data:`PERMANENT_CODES`)."""
        from botocore.exceptions import ClientError

        try:
            self._client.put_object(
                Bucket=self.bucket, Key=key, Body=body, ContentType="application/x-ndjson"
            )
        except ClientError as e:
            error = e.response.get("Error", {})
            code = str(error.get("Code", ""))
            if code in PERMANENT_CODES:
                raise ResultStoreRefused(self.uri_of(key), code,
                                         str(error.get("Message", ""))) from e  # fmt: skip
            raise
        return self.uri_of(key)

    def uris(self, prefix: str) -> list[str]:
        """The uri of every object whose key starts with ``prefix`` (paginated listing)."""
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        return [self.uri_of(item["Key"]) for page in pages for item in page.get("Contents", [])]

    def delete(self, uri: str) -> None:
        """Remove one object (deleting a missing one is not an error)."""
        parsed = urlparse(uri)
        if parsed.scheme != "s3":
            raise ResultStoreError(uri, "not an s3:// uri")
        self._client.delete_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))

    def get_range(self, uri: str, *, offset: int, length: int) -> bytes:
        """One ranged GET."""
        parsed = urlparse(uri)
        if parsed.scheme != "s3":
            raise ResultStoreError(uri, "not an s3:// uri")
        try:
            answer = self._client.get_object(
                Bucket=parsed.netloc,
                Key=parsed.path.lstrip("/"),
                Range=f"bytes={offset}-{offset + length - 1}",
            )
        except Exception as e:  # botocore's errors are generated classes
            raise ResultStoreError(uri, f"cannot read the payload: {e}") from e
        data: bytes = answer["Body"].read()
        return data

    def get(self, uri: str) -> bytes:
        """One GET of the whole object."""
        parsed = urlparse(uri)
        if parsed.scheme != "s3":
            raise ResultStoreError(uri, "not an s3:// uri")
        answer = self._client.get_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))
        data: bytes = answer["Body"].read()
        return data

    def download(self, uri: str, file: BinaryIO) -> None:
        """Ranged, concurrent GETs into ``file`` (boto3's transfer manager)."""
        parsed = urlparse(uri)
        if parsed.scheme != "s3":
            raise ResultStoreError(uri, "not an s3:// uri")
        self._client.download_fileobj(parsed.netloc, parsed.path.lstrip("/"), file)

    def put_file(self, key: str, file: BinaryIO) -> str:
        """Multipart upload when large (boto3's transfer manager)."""
        self._client.upload_fileobj(
            file, self.bucket, key, ExtraArgs={"ContentType": "application/x-ndjson"}
        )
        return f"s3://{self.bucket}/{key}"

    def ping(self) -> None:
        """One cheap real request: the bucket exists and answers (raises otherwise)."""
        self._client.head_bucket(Bucket=self.bucket)

    def ensure_ready(self) -> None:
        """Create the bucket when it does not exist."""
        from botocore.exceptions import ClientError

        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError:
            self._client.create_bucket(Bucket=self.bucket)

    def presign(self, uri: str, *, expires_s: int = 3600) -> str:
        """A presigned GET URL for the whole batch object."""
        parsed = urlparse(uri)
        url: str = self._client.generate_presigned_url(
            "get_object",
            Params={"Bucket": parsed.netloc, "Key": parsed.path.lstrip("/")},
            ExpiresIn=expires_s,
        )
        return url


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

"""Where result payloads live: an interface and its S3 adapter (the local folder's is
:mod:`infq.results.files`).

Both adapters speak ``uri`` strings (``s3://bucket/key`` or ``file:///path``) so a
job row's pointer says which adapter reads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, BinaryIO, Protocol
from urllib.parse import urlparse

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

    def folders(self, prefix: str) -> list[str]:
        """The key prefixes one level below ``prefix`` (``results/`` → ``results/2026/``)."""
        ...

    def delete_under(self, prefix: str, *, limit: int) -> int:
        """Delete up to ``limit`` objects whose key starts with ``prefix``; how many went
        (fewer than ``limit``: none is left)."""
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

    def folders(self, prefix: str) -> list[str]:
        """One level of the key hierarchy below ``prefix`` (a delimited listing)."""
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix, Delimiter="/"
        )
        return sorted(p["Prefix"] for page in pages for p in page.get("CommonPrefixes", []))

    def delete_under(self, prefix: str, *, limit: int) -> int:
        """One listing and one multi-object delete (S3 takes at most 1,000 keys each)."""
        listed = self._client.list_objects_v2(
            Bucket=self.bucket, Prefix=prefix, MaxKeys=max(1, min(limit, 1000))
        )
        keys = [{"Key": item["Key"]} for item in listed.get("Contents", [])]
        if not keys:
            return 0
        answer = self._client.delete_objects(
            Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True}
        )
        if errors := answer.get("Errors"):
            first = errors[0]
            why = f"{len(errors)} not deleted: {first.get('Message')}"
            raise ResultStoreError(self.uri_of(first.get("Key", prefix)), why)
        return len(keys)

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

"""``InfqClient``: infq's REST API from Python (httpx), for callers without Kafka access.

    with InfqClient("http://localhost:8000", api_key) as infq:
        batch = infq.create_batch([{"custom_id": "a", "text": "hello"}], model="echo")
        infq.wait(batch["batch_id"], on_progress=print)
        for line in infq.results(batch["batch_id"]):
            print(line["custom_id"], line["result"])

Every error the API answers becomes :class:`ApiError` with the API's ``code`` and
``detail`` (``unknown_model``, ``not_found``, ``conflict``…), so callers branch on the
code, not on message text. Trusted producers with Kafka access use
:class:`producers.JobProducer` instead (no HTTP hop, millions of jobs).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import orjson

from infq.errors import InfqError

FINAL_BATCH_STATUSES = frozenset({"completed", "cancelled", "expired"})


class ApiError(InfqError):
    """An error answer of the REST API: its HTTP status, ``code`` and ``detail``."""

    def __init__(
        self, status_code: int, code: str, detail: str, *, retry_after_s: float | None = None
    ) -> None:
        super().__init__(f"{status_code} {code}: {detail}")
        self.status_code = status_code
        self.code = code
        self.detail = detail
        self.retry_after_s = retry_after_s  # 429 (a tenant's limit) and 503: when to retry


class WaitTimeout(InfqError):
    """A batch or job was not final within the time given."""


class InfqClient:
    """See the module docstring."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout_s,
            transport=transport,
        )

    def __enter__(self) -> InfqClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = self._http.request(method, path, **kwargs)
        if answer.status_code >= 400:
            try:
                body = answer.json()
                code, detail = str(body.get("code")), str(body.get("detail"))
            except ValueError:
                code, detail = "http_error", answer.text[:500]
            retry = answer.headers.get("retry-after")
            wait_s = float(retry) if retry and retry.isdigit() else None
            raise ApiError(answer.status_code, code, detail, retry_after_s=wait_s)
        return answer.json()

    # --- jobs ---

    def submit(self, *, model: str, text: str, **fields: Any) -> uuid.UUID:
        """Submit one job (validated by the API first); returns its id."""
        [job_id] = self.submit_jobs([{"model": model, "input": {"text": text}, **fields}])
        return job_id

    def submit_jobs(self, jobs: list[dict[str, Any]]) -> list[uuid.UUID]:
        """Submit job requests (as in ``job-request.v1``, without ``tenant``)."""
        body = self._call("POST", "/v1/jobs", json={"jobs": jobs})
        return [uuid.UUID(j) for j in body["job_ids"]]

    def get(self, job_id: uuid.UUID | str) -> dict[str, Any]:
        """A job's status, error, timings and small result."""
        return dict(self._call("GET", f"/v1/jobs/{job_id}"))

    def result(self, job_id: uuid.UUID | str) -> Any:
        """A succeeded job's result, fetched from its presigned URL when it is large."""
        body = self._call("GET", f"/v1/jobs/{job_id}/result")
        if body.get("url") is None:
            return body.get("result")
        line = httpx.get(body["url"], headers={"Range": body["range"]}, timeout=60)
        line.raise_for_status()
        return orjson.loads(line.content)["result"]

    def cancel(self, job_id: uuid.UUID | str) -> None:
        """Cancel a queued job (:class:`ApiError` 409 when it already runs or is final)."""
        self._call("POST", f"/v1/jobs/{job_id}/cancel")

    def list_jobs(self, *, page_size: int = 100, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every job matching ``filters`` (``status``, ``batch_id``, ``created_after``…),
        newest first, fetching page after page as you iterate."""
        yield from self._pages("/v1/jobs", page_size=page_size, filters=filters)

    # --- batches ---

    def create_batch(
        self,
        requests: Iterable[dict[str, Any] | str] | Path,
        *,
        model: str,
        batch_id: str | None = None,
        completion_window: str | None = None,
        metadata: dict[str, Any] | None = None,
        webhook_url: str | None = None,
    ) -> dict[str, Any]:
        """Upload a batch: dicts (``{"custom_id", "text"}`` or ``{"custom_id", "input",
        "params"}``), plain strings, or a JSONL file. Returns ``batch_id`` and
        ``job_ids`` (in request order)."""
        if isinstance(requests, Path):
            body = requests.read_bytes()
        else:
            body = b"\n".join(orjson.dumps(r) for r in requests)
        params = {"model": model, "batch_id": batch_id, "completion_window": completion_window,
                  "webhook_url": webhook_url,
                  "metadata": orjson.dumps(metadata).decode() if metadata else None}  # fmt: skip
        return dict(
            self._call(
                "POST",
                "/v1/batches",
                params={k: v for k, v in params.items() if v is not None},
                content=body,
                headers={"Content-Type": "application/x-ndjson"},
            )
        )

    def get_batch(self, batch_id: str) -> dict[str, Any]:
        """A batch's status, request counts, times and (once finished) file URLs."""
        return dict(self._call("GET", f"/v1/batches/{batch_id}"))

    def cancel_batch(self, batch_id: str) -> int:
        """Cancel a batch; returns how many queued jobs were cancelled now."""
        return int(self._call("POST", f"/v1/batches/{batch_id}/cancel")["cancelled"])

    def list_batches(self, *, page_size: int = 100, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every batch matching ``filters`` (``status``, ``created_after``…), newest
        first, page after page."""
        yield from self._pages("/v1/batches", page_size=page_size, filters=filters)

    def wait(
        self,
        batch_id: str,
        *,
        timeout_s: float = 3600.0,
        poll_s: float = 1.0,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll until the batch is completed, cancelled or expired; returns it.
        ``on_progress`` sees each poll's batch (for a progress bar)."""
        deadline = time.monotonic() + timeout_s
        while True:
            batch = self.get_batch(batch_id)
            if on_progress is not None:
                on_progress(batch)
            if batch["status"] in FINAL_BATCH_STATUSES:
                return batch
            if time.monotonic() >= deadline:
                raise WaitTimeout(f"batch {batch_id!r} is still {batch['status']}")
            time.sleep(poll_s)

    def results(self, batch_id: str, *, errors: bool = False) -> Iterator[dict[str, Any]]:
        """A finished batch's output lines (or, with ``errors``, its error lines) in
        input order, streamed from the file's presigned URL (never all in memory)."""
        batch = self.get_batch(batch_id)
        url = batch.get("error_url" if errors else "output_url")
        if not url:
            raise ApiError(409, "not_finished", f"batch {batch_id!r} is {batch['status']}")
        with httpx.stream("GET", url, timeout=60) as answer:
            answer.raise_for_status()
            for line in answer.iter_lines():
                if line.strip():
                    yield orjson.loads(line)

    def _pages(
        self, path: str, *, page_size: int, filters: dict[str, Any]
    ) -> Iterator[dict[str, Any]]:
        after: str | None = None
        while True:
            params = {**filters, "limit": page_size}
            if after:
                params["after"] = after
            page = self._call("GET", path, params=params)
            yield from page["data"]
            after = page.get("next_cursor")
            if not page.get("has_more") or not after:
                return

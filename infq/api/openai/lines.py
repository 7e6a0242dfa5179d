"""The batch file format of the OpenAI Batch API: request lines in, output and error
lines out, and the ``/v1/embeddings`` requests and responses (chat and text
completions are :mod:`infq.api.openai.generation`). Pure: no database, store or
framework.

A request line is ``{"custom_id", "method": "POST", "url": "/v1/embeddings", "body":
{"model", "input", "encoding_format"?, "dimensions"?, "user"?}}``. ``input`` may be a
string or a list of strings; each string becomes one infq job, and the response body
puts their vectors back together in order.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

EMBEDDINGS = "/v1/embeddings"
CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
SERVED = (EMBEDDINGS, CHAT, COMPLETIONS)
# Endpoints OpenAI batches accept that infq does not serve yet (refused with a 400).
NOT_YET = ("/v1/responses",)
ENCODINGS = ("float", "base64")
BODY_FIELDS = {"model", "input", "encoding_format", "dimensions", "user"}
# OpenAI's own limit on one embeddings request: without it one line of a file could
# carry millions of inputs, each a job built in memory before anything is refused.
MAX_INPUTS_PER_LINE = 2048
# OpenAI's limit on the tokens of one embeddings request, all inputs together.
MAX_TOKENS_PER_LINE = 300_000
# [CLS] and [SEP] (or <s> and </s>): what a tokenizer adds to each input at most.
SPECIAL_TOKENS_PER_INPUT = 2
MAX_CUSTOM_ID_CHARS = 512


@dataclass(frozen=True)
class LineError:
    """Why one line of an input file was refused (``line`` counts from 1)."""

    code: str
    line: int
    message: str
    param: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The entry of a failed batch's ``errors.data``."""
        return {"code": self.code, "line": self.line, "message": self.message, "param": self.param}


class BadLine(ValueError):
    """A request line that cannot run; carries its :class:`LineError`."""

    def __init__(self, error: LineError) -> None:
        super().__init__(error.message)
        self.error = error


@dataclass(frozen=True)
class EmbeddingRequest:
    """One valid request line."""

    line: int
    custom_id: str
    model: str
    inputs: tuple[str, ...]
    encoding_format: str


def parse_line(raw: bytes | str, *, line: int, endpoint: str) -> EmbeddingRequest:
    """One request line of an embeddings batch; :class:`BadLine` says what is wrong
    with OpenAI's codes (``invalid_json_line``, ``missing_required_parameter``,
    ``invalid_value``, ``mismatched_endpoint``, ``unsupported_parameter``)."""
    custom_id, body = envelope(raw, line=line, endpoint=endpoint)

    def bad(code: str, message: str, param: str | None = None) -> BadLine:
        return BadLine(LineError(code, line, message, param))

    return EmbeddingRequest(
        line=line,
        custom_id=custom_id,
        model=_model(body, bad),
        inputs=_inputs(body, bad),
        encoding_format=_encoding(body, bad),
    )


def check_tokens(request: EmbeddingRequest, count: Callable[[str], int | None]) -> None:
    """Refuse a line whose inputs hold more than :data:`MAX_TOKENS_PER_LINE` tokens.

    Every token of a WordPiece or byte-level BPE vocabulary covers at least one UTF-8
    byte, so bytes plus the special tokens bound the count from above: a line under the
    limit by that bound (nearly every line) is never tokenized. Above it, ``count``
    tokenizes each input until the limit is passed; without a tokenizer (``None``) the
    bound stands in for the count."""
    bound = sum(len(text.encode()) + SPECIAL_TOKENS_PER_INPUT for text in request.inputs)
    if bound <= MAX_TOKENS_PER_LINE:
        return
    total = 0
    for text in request.inputs:
        counted = count(text)
        total += len(text.encode()) + SPECIAL_TOKENS_PER_INPUT if counted is None else counted
        if total > MAX_TOKENS_PER_LINE:
            raise BadLine(LineError(
                "invalid_value", request.line, f"body.input has more than "
                f"{MAX_TOKENS_PER_LINE} tokens; one request takes at most "
                f"{MAX_TOKENS_PER_LINE}.", "body.input",
            ))  # fmt: skip


def envelope(raw: bytes | str, *, line: int, endpoint: str) -> tuple[str, dict[str, Any]]:
    """``(custom_id, body)`` of a request line for ``endpoint``, whatever the endpoint;
    :class:`BadLine` when the line itself is wrong."""

    def bad(code: str, message: str, param: str | None = None) -> BadLine:
        return BadLine(LineError(code, line, message, param))

    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise bad("invalid_json_line", f"This line is not valid JSON: {e}") from e
    if not isinstance(obj, dict):
        raise bad("invalid_json_line", "A request line must be a JSON object.")
    for field in ("custom_id", "method", "url", "body"):
        if field not in obj:
            raise bad("missing_required_parameter", f"Missing required parameter: '{field}'.",
                      field)  # fmt: skip
    custom_id = obj["custom_id"]
    if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= MAX_CUSTOM_ID_CHARS:
        raise bad("invalid_value", f"custom_id must be a string of 1 to "
                  f"{MAX_CUSTOM_ID_CHARS} characters.", "custom_id")  # fmt: skip
    if obj["method"] != "POST":
        raise bad("invalid_value", "method must be 'POST'.", "method")
    if obj["url"] != endpoint:
        raise bad("mismatched_endpoint", f"The url {obj['url']!r} does not match the batch's "
                  f"endpoint {endpoint!r}.", "url")  # fmt: skip
    body = obj["body"]
    if not isinstance(body, dict):
        raise bad("invalid_value", "body must be a JSON object.", "body")
    return custom_id, body


def _model(body: dict[str, Any], bad: Any) -> str:
    unknown = sorted(set(body) - BODY_FIELDS)
    if unknown:
        raise bad("unsupported_parameter", f"Unsupported parameter: 'body.{unknown[0]}'.",
                  f"body.{unknown[0]}")  # fmt: skip
    if "dimensions" in body:
        # No model of the catalogue can shorten its vectors (MiniLM has 384, fixed).
        raise bad("unsupported_parameter", "This model does not support 'dimensions'.",
                  "body.dimensions")  # fmt: skip
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad("missing_required_parameter", "Missing required parameter: 'body.model'.",
                  "body.model")  # fmt: skip
    return model


def _inputs(body: dict[str, Any], bad: Any) -> tuple[str, ...]:
    raw = body.get("input")
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not items:
        raise bad("invalid_value", "body.input must be a string or a non-empty list of "
                  "strings.", "body.input")  # fmt: skip
    if len(items) > MAX_INPUTS_PER_LINE:
        raise bad("invalid_value", f"body.input has {len(items)} inputs; one request takes "
                  f"at most {MAX_INPUTS_PER_LINE}.", "body.input")  # fmt: skip
    for n, item in enumerate(items):
        if not isinstance(item, str) or not item:
            # Token arrays (lists of integers) are OpenAI's; infq takes text only.
            raise bad("invalid_value", f"body.input[{n}] must be a non-empty string.",
                      "body.input")  # fmt: skip
    return tuple(items)


def _encoding(body: dict[str, Any], bad: Any) -> str:
    encoding = body.get("encoding_format", "float")
    if encoding not in ENCODINGS:
        raise bad("invalid_value", f"encoding_format must be one of {list(ENCODINGS)}.",
                  "body.encoding_format")  # fmt: skip
    return str(encoding)


def request_line_id(batch_id: str, line: int) -> str:
    """A request's ``batch_req_…`` id: derived, so converting again gives the same."""
    digest = hashlib.sha256(f"{batch_id}:{line}".encode()).hexdigest()[:32]
    return f"batch_req_{digest}"


def encode_vector(vector: Sequence[float], encoding_format: str) -> list[float] | str:
    """A vector as OpenAI returns it: floats, or base64 of little-endian float32."""
    array = np.asarray(vector, dtype="<f4")
    if encoding_format == "base64":
        return base64.b64encode(array.tobytes()).decode("ascii")
    return [float(x) for x in array]


def embeddings_body(
    vectors: Sequence[Sequence[float]], *, model: str, encoding_format: str, prompt_tokens: int
) -> dict[str, Any]:
    """The ``/v1/embeddings`` response object for one request line's vectors."""
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": encode_vector(v, encoding_format)}
            for i, v in enumerate(vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


def output_line(
    *, line_id: str, custom_id: str, request_id: str, body: dict[str, Any]
) -> dict[str, Any]:
    """A line of the output file: the request succeeded."""
    return {
        "id": line_id,
        "custom_id": custom_id,
        "response": {"status_code": 200, "request_id": request_id, "body": body},
        "error": None,
    }


def error_line(*, line_id: str, custom_id: str, code: str, message: str) -> dict[str, Any]:
    """A line of the error file: the request failed, was cancelled or expired."""
    return {
        "id": line_id,
        "custom_id": custom_id,
        "response": None,
        "error": {"code": code, "message": message},
    }

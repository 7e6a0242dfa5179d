"""``/v1/chat/completions`` and ``/v1/completions`` request lines, and their response
bodies, over the catalogue's ``generate`` task. Pure: no database, store or framework.

One request line is one ``generate`` job: the prompt (a completions ``prompt``, or the
chat ``messages`` once the model's chat template rendered them) is its input text, and
OpenAI's sampling parameters become the task's params (``max_tokens`` or
``max_completion_tokens`` → ``max_new_tokens``; ``temperature``, ``top_p``, ``seed`` and
``stop`` keep their names). The catalogue then checks those params as for any job
(the entry's ``max_new_tokens`` bound, ranges), so the two surfaces cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infq.api.openai.lines import CHAT, BadLine, LineError, envelope

# Parameters both endpoints take; ``user`` is accepted and ignored, as a label.
SAMPLING = {"model", "max_tokens", "temperature", "top_p", "seed", "stop", "n", "user"}
CHAT_FIELDS = SAMPLING | {"messages", "max_completion_tokens"}
COMPLETION_FIELDS = SAMPLING | {"prompt"}
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class GenerateRequest:
    """One valid chat or completions request line: ``messages`` for chat (to render),
    ``prompt`` for completions, and the ``generate`` params."""

    line: int
    custom_id: str
    model: str
    params: dict[str, Any]
    messages: tuple[dict[str, str], ...] = ()
    prompt: str = ""


def parse_generate_line(raw: bytes | str, *, line: int, endpoint: str) -> GenerateRequest:
    """One request line of a chat or completions batch; :class:`BadLine` with OpenAI's
    codes, ``unsupported_parameter`` for what infq cannot honour (``n`` above 1,
    ``logprobs``, tools, ...)."""
    custom_id, body = envelope(raw, line=line, endpoint=endpoint)

    def bad(code: str, message: str, param: str) -> BadLine:
        return BadLine(LineError(code, line, message, f"body.{param}"))

    chat = endpoint == CHAT
    unknown = sorted(set(body) - (CHAT_FIELDS if chat else COMPLETION_FIELDS))
    if unknown:
        raise bad("unsupported_parameter", f"Unsupported parameter: 'body.{unknown[0]}'.",
                  unknown[0])  # fmt: skip
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad("missing_required_parameter", "Missing required parameter: 'body.model'.",
                  "model")  # fmt: skip
    if body.get("n", 1) != 1:
        raise bad("unsupported_parameter", "infq returns one choice per request: n must be 1.",
                  "n")  # fmt: skip
    params = _params(body, bad)
    if chat:
        return GenerateRequest(line=line, custom_id=custom_id, model=model, params=params,
                               messages=_messages(body, bad))  # fmt: skip
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        # Lists of prompts and token arrays are OpenAI's; one line is one prompt here.
        raise bad("invalid_value", "body.prompt must be a non-empty string.", "prompt")
    return GenerateRequest(line=line, custom_id=custom_id, model=model, params=params,
                           prompt=prompt)  # fmt: skip


def _messages(body: dict[str, Any], bad: Any) -> tuple[dict[str, str], ...]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad("missing_required_parameter", "body.messages must be a non-empty list.",
                  "messages")  # fmt: skip
    out = []
    for n, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise bad("invalid_value", f"body.messages[{n}].role must be one of "
                      f"{list(ROLES)}.", "messages")  # fmt: skip
        content = message.get("content")
        if not isinstance(content, str):
            # Content parts (images, audio) need a multimodal model; text only here.
            raise bad("invalid_value", f"body.messages[{n}].content must be a string.",
                      "messages")  # fmt: skip
        out.append({"role": str(message["role"]), "content": content})
    return tuple(out)


def _params(body: dict[str, Any], bad: Any) -> dict[str, Any]:
    """OpenAI's sampling fields as ``generate`` params (ranges are the catalogue's to
    check; only the shapes are checked here)."""
    params: dict[str, Any] = {}
    if "max_tokens" in body and "max_completion_tokens" in body:
        raise bad("invalid_value", "Send max_tokens or max_completion_tokens, not both.",
                  "max_completion_tokens")  # fmt: skip
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if value is not None:
            if not isinstance(value, int) or isinstance(value, bool):
                raise bad("invalid_value", f"body.{name} must be an integer.", name)
            params["max_new_tokens"] = value
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None:
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise bad("invalid_value", f"body.{name} must be a number.", name)
            params[name] = float(value)
    seed = body.get("seed")
    if seed is not None:
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise bad("invalid_value", "body.seed must be an integer.", "seed")
        params["seed"] = seed
    stop = body.get("stop")
    if stop is not None:
        stops = [stop] if isinstance(stop, str) else stop
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise bad("invalid_value", "body.stop must be a string or a list of strings.",
                      "stop")  # fmt: skip
        params["stop"] = stops
    return params


def usage(result: dict[str, Any]) -> dict[str, int]:
    """OpenAI's ``usage`` from a ``generate`` result's token counts."""
    prompt = int(result.get("prompt_tokens") or 0)
    completion = int(result.get("completion_tokens") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}  # fmt: skip


def chat_body(
    result: dict[str, Any], *, response_id: str, model: str, created: int
) -> dict[str, Any]:
    """The ``chat.completion`` object for one ``generate`` result."""
    return {
        "id": f"chatcmpl-{response_id}",
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": str(result.get("text", ""))},
                "finish_reason": _finish(result),
                "logprobs": None,
            }
        ],
        "usage": usage(result),
    }


def completion_body(
    result: dict[str, Any], *, response_id: str, model: str, created: int
) -> dict[str, Any]:
    """The ``text_completion`` object for one ``generate`` result."""
    return {
        "id": f"cmpl-{response_id}",
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "text": str(result.get("text", "")),
                "finish_reason": _finish(result),
                "logprobs": None,
            }
        ],
        "usage": usage(result),
    }


def _finish(result: dict[str, Any]) -> str:
    # The worker says "stop" (EOS or a stop string) or "length" (max_new_tokens).
    return "length" if result.get("finish_reason") == "length" else "stop"

"""Chat and text completions on the OpenAI surface, pure parts: request lines to
``generate`` params, chat templates rendered as transformers renders them, and the
response bodies built from a ``generate`` result."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from infq.api.openai import lines
from infq.api.openai.generation import (
    chat_body,
    completion_body,
    parse_generate_line,
    usage,
)
from infq.catalogue.chat import ChatTemplates, TemplateError, render, special_tokens
from infq.catalogue.entries import Entry
from infq.errors import RejectedRecord

TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content }}{{ eos_token }}\n"
    "{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}"
)
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]


def _line(body: dict[str, Any], url: str = lines.CHAT) -> bytes:
    return orjson.dumps({"custom_id": "c1", "method": "POST", "url": url, "body": body})


def test_a_chat_line_maps_openais_sampling_fields_to_generate_params() -> None:
    body = {"model": "m", "messages": MESSAGES, "max_completion_tokens": 5, "temperature": 0,
            "top_p": 0.5, "seed": 7, "stop": "\n", "n": 1, "user": "u"}  # fmt: skip
    got = parse_generate_line(_line(body), line=4, endpoint=lines.CHAT)
    assert (got.line, got.custom_id, got.model, got.prompt) == (4, "c1", "m", "")
    assert got.messages == tuple(MESSAGES)
    assert got.params == {"max_new_tokens": 5, "temperature": 0.0, "top_p": 0.5, "seed": 7,
                          "stop": ["\n"]}  # fmt: skip


def test_a_completions_line_takes_a_prompt_and_max_tokens() -> None:
    body = {"model": "m", "prompt": "Once", "max_tokens": 3, "stop": ["a", "b"]}
    got = parse_generate_line(_line(body, lines.COMPLETIONS), line=1, endpoint=lines.COMPLETIONS)
    assert (got.prompt, got.messages) == ("Once", ())
    assert got.params == {"max_new_tokens": 3, "stop": ["a", "b"]}


@pytest.mark.parametrize(
    ("endpoint", "body", "code", "param"),
    [
        (lines.CHAT, {"model": "m", "messages": MESSAGES, "logprobs": True},
         "unsupported_parameter", "body.logprobs"),
        (lines.CHAT, {"model": "m", "messages": MESSAGES, "n": 2}, "unsupported_parameter",
         "body.n"),
        (lines.CHAT, {"model": "m", "messages": MESSAGES, "prompt": "x"},
         "unsupported_parameter", "body.prompt"),
        (lines.COMPLETIONS, {"model": "m", "prompt": "x", "messages": MESSAGES},
         "unsupported_parameter", "body.messages"),
        (lines.COMPLETIONS, {"model": "m", "prompt": "x", "max_completion_tokens": 3},
         "unsupported_parameter", "body.max_completion_tokens"),
        (lines.CHAT, {"messages": MESSAGES}, "missing_required_parameter", "body.model"),
        (lines.CHAT, {"model": "m"}, "missing_required_parameter", "body.messages"),
        (lines.CHAT, {"model": "m", "messages": [{"role": "tool", "content": "x"}]},
         "invalid_value", "body.messages"),
        (lines.CHAT, {"model": "m", "messages": [{"role": "user", "content": [{"type": "text"}]}]},
         "invalid_value", "body.messages"),
        (lines.CHAT, {"model": "m", "messages": MESSAGES, "max_tokens": 1,
                      "max_completion_tokens": 1}, "invalid_value", "body.max_completion_tokens"),
        (lines.CHAT, {"model": "m", "messages": MESSAGES, "max_tokens": "9"}, "invalid_value",
         "body.max_tokens"),
        (lines.CHAT, {"model": "m", "messages": MESSAGES, "temperature": True}, "invalid_value",
         "body.temperature"),
        (lines.CHAT, {"model": "m", "messages": MESSAGES, "stop": [1]}, "invalid_value",
         "body.stop"),
        (lines.COMPLETIONS, {"model": "m", "prompt": ["a", "b"]}, "invalid_value", "body.prompt"),
        (lines.COMPLETIONS, {"model": "m", "prompt": ""}, "invalid_value", "body.prompt"),
    ],
)  # fmt: skip
def test_a_bad_generate_line_says_its_code_and_field(
    endpoint: str, body: dict[str, Any], code: str, param: str
) -> None:
    with pytest.raises(lines.BadLine) as caught:
        parse_generate_line(_line(body, endpoint), line=9, endpoint=endpoint)
    assert (caught.value.error.code, caught.value.error.line, caught.value.error.param) == (
        code, 9, param,
    )  # fmt: skip


def test_a_line_for_another_endpoint_is_mismatched() -> None:
    with pytest.raises(lines.BadLine) as caught:
        parse_generate_line(_line({"model": "m", "prompt": "x"}, lines.COMPLETIONS), line=1,
                            endpoint=lines.CHAT)  # fmt: skip
    assert caught.value.error.code == "mismatched_endpoint"


def test_a_template_renders_with_a_generation_prompt_and_special_tokens() -> None:
    got = render(TEMPLATE, MESSAGES, special_tokens={"bos_token": "<s>", "eos_token": "</s>"})
    assert got == "<s><system>Be brief.</s>\n<user>Hi</s>\n<assistant>"


def test_a_template_trims_blocks_as_transformers_does() -> None:
    template = "{% for m in messages %}\n  {{ m.content }}\n{% endfor %}"
    assert render(template, MESSAGES) == "  Be brief.\n  Hi\n"


def test_a_template_may_refuse_messages_and_cannot_escape_its_sandbox() -> None:
    refusing = "{% if messages[0].role != 'user' %}{{ raise_exception('user first') }}{% endif %}"
    with pytest.raises(TemplateError, match="user first"):
        render(refusing, MESSAGES)
    with pytest.raises(TemplateError):
        render("{{ messages.__class__.__mro__[1].__subclasses__() }}", MESSAGES)


def test_special_tokens_accept_saved_added_tokens() -> None:
    config = {"bos_token": {"content": "<s>", "lstrip": False}, "eos_token": "</s>", "x": 1}
    assert special_tokens(config) == {"bos_token": "<s>", "eos_token": "</s>"}


def _entry(folder: Path) -> Entry:
    return Entry.model_validate(
        {"name": "tiny", "task": "generate", "revisions": [{"name": "r1", "path": str(folder)}]}
    )


def test_templates_come_from_the_revisions_folder_once(tmp_path: Path) -> None:
    config = {"chat_template": TEMPLATE, "bos_token": "<s>", "eos_token": "</s>"}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    entry = _entry(tmp_path)
    templates = ChatTemplates()
    first = templates.prompt(entry, entry.revisions[0], MESSAGES)
    assert first.endswith("<assistant>")
    (tmp_path / "tokenizer_config.json").write_text("{}")  # cached: read once per revision
    assert templates.prompt(entry, entry.revisions[0], MESSAGES) == first


def test_a_model_without_a_template_refuses_chat(tmp_path: Path) -> None:
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"eos_token": "</s>"}))
    entry = _entry(tmp_path)
    with pytest.raises(RejectedRecord) as caught:
        ChatTemplates().prompt(entry, entry.revisions[0], MESSAGES)
    assert caught.value.code == "chat_template_missing"
    assert "/v1/completions" in caught.value.message


def test_a_template_in_chat_template_jinja_is_read_too(tmp_path: Path) -> None:
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"eos_token": "</s>"}))
    (tmp_path / "chat_template.jinja").write_text(TEMPLATE)
    entry = _entry(tmp_path)
    got = ChatTemplates().prompt(entry, entry.revisions[0], MESSAGES)
    assert got == "<system>Be brief.</s>\n<user>Hi</s>\n<assistant>"


RESULT = {"text": "Hello!", "finish_reason": "length", "prompt_tokens": 7,
          "completion_tokens": 3, "truncated": False}  # fmt: skip


def test_a_chat_body_is_openais_chat_completion() -> None:
    body = chat_body(RESULT, response_id="abc", model="tiny", created=1700000000)
    assert body == {
        "id": "chatcmpl-abc", "object": "chat.completion", "created": 1700000000,
        "model": "tiny",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"},
                     "finish_reason": "length", "logprobs": None}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    }  # fmt: skip


def test_a_completion_body_is_openais_text_completion() -> None:
    body = completion_body({**RESULT, "finish_reason": "stop"}, response_id="abc", model="tiny",
                           created=1)  # fmt: skip
    assert (body["id"], body["object"]) == ("cmpl-abc", "text_completion")
    assert body["choices"] == [{"index": 0, "text": "Hello!", "finish_reason": "stop",
                                "logprobs": None}]  # fmt: skip
    assert usage({}) == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}

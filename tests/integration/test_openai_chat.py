"""Chat and text completions batches through the official ``openai`` SDK, on an infq
of its own whose catalogue serves the tiny GPT-2 as a ``generate`` model with a chat
template: the messages are rendered as transformers renders them, and each answer
equals infq's own ``generate`` result for the same prompt and params."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from openai import OpenAI
from transformers import AutoTokenizer

from infq.catalogue.chat import ChatTemplates
from infq.catalogue.entries import Entry
from infq.db.session import make_engine, make_sessionmaker
from infq.settings import Settings
from infq.stack.processes import free_port
from infq.tenants.accounts import create as create_tenant
from tests.integration.conftest import LOG_DIR
from tests.integration.harness import (
    InfqProcess,
    isolated_env,
    settings_for,
    submit_and_wait,
    wait_api,
    wait_for,
)
from tests.tiny_models import build_gpt2

pytestmark = pytest.mark.integration

MODEL = "tiny-chat"
TEMPLATE = (
    "{% for m in messages %}{{ m.role }}: {{ m.content }}{{ eos_token }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)
CHATS = [
    [{"role": "user", "content": "The weather"}],
    [{"role": "system", "content": "Queues are"}, {"role": "user", "content": "Hello"}],
]
MAX_TOKENS = 6
PLAIN = "tiny-plain"  # the same kind of model, without a chat template


@pytest.fixture(scope="module")
def world(
    stack_env: dict[str, str], settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """API, dispatcher, worker and notifier of their own, the tiny GPT-2 as a chat model,
    and a tenant's key."""
    root = tmp_path_factory.mktemp("openai-chat")
    folder = build_gpt2(root / "gpt", chat_template=TEMPLATE)
    plain = build_gpt2(root / "plain")
    catalogue = root / "models.toml"
    catalogue.write_text(
        f'[[models]]\nname = "{MODEL}"\ntask = "generate"\npath = "{folder}"\n'
        f'revision = "g1"\nmax_new_tokens = 12\n\n'
        f'[[models]]\nname = "{PLAIN}"\ntask = "generate"\npath = "{plain}"\n'
        f'revision = "p1"\n'
    )
    env = isolated_env(stack_env, settings, name="oaichat", extra={
        "INFQ_MODELS_FILE": str(catalogue), "INFQ_API_PORT": str(free_port()),
        "INFQ_INLINE_RESULT_MAX_BYTES": "65536",
    })  # fmt: skip
    procs = [
        InfqProcess(["worker", "--model", MODEL], env=env,
                    log_path=LOG_DIR / "oaichat-worker.log"),
        InfqProcess(["dispatcher"], env=env, log_path=LOG_DIR / "oaichat-dispatcher.log"),
        InfqProcess(["notifier"], env=env, log_path=LOG_DIR / "oaichat-notifier.log"),
        InfqProcess(["api"], env=env, log_path=LOG_DIR / "oaichat-api.log"),
    ]  # fmt: skip
    engine = make_engine(settings_for(env).database)
    try:
        with make_sessionmaker(engine).begin() as session:
            creds = create_tenant(session, f"chat-{uuid.uuid4().hex[:8]}")
            assert creds is not None
        api = f"http://127.0.0.1:{env['INFQ_API_PORT']}"
        wait_api(api, timeout_s=90, what="the chat world's API")
        yield {"api": api, "key": creds.api_key, "folder": folder}
    finally:
        for p in procs:
            p.stop()
        engine.dispose()


def _own_texts(world: dict[str, Any], prompts: list[str]) -> list[str]:
    """The same prompts through infq's own ``/v1/jobs`` (greedy, no cache)."""
    params = {"max_new_tokens": MAX_TOKENS, "temperature": 0.0}
    jobs = [{"model": MODEL, "input": {"text": p}, "params": params, "cache": False}
            for p in prompts]  # fmt: skip
    return [result["text"] for result in submit_and_wait(world["api"], world["key"], jobs)]


def test_a_chat_and_a_completions_batch_answer_as_infqs_own_generate(
    world: dict[str, Any],
) -> None:
    client = OpenAI(base_url=f"{world['api']}/openai/v1", api_key=world["key"], max_retries=0)
    tokenizer = AutoTokenizer.from_pretrained(world["folder"], local_files_only=True)
    prompts = [
        str(tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True))
        for m in CHATS
    ]
    # infq renders the messages torch-free exactly as transformers does
    entry = Entry.model_validate(
        {
            "name": MODEL,
            "task": "generate",
            "revisions": [{"name": "g1", "path": str(world["folder"])}],
        }
    )
    mine = [ChatTemplates().prompt(entry, entry.revisions[0], m) for m in CHATS]
    assert mine == prompts
    # Given a chat batch of two conversations and a completions batch of one prompt
    chat_lines = [
        {"custom_id": f"chat-{n}", "method": "POST", "url": "/v1/chat/completions",
         "body": {"model": MODEL, "messages": m, "max_tokens": MAX_TOKENS, "temperature": 0}}
        for n, m in enumerate(CHATS)
    ]  # fmt: skip
    completion_lines = [
        {"custom_id": "plain", "method": "POST", "url": "/v1/completions",
         "body": {"model": MODEL, "prompt": "A long time ago", "max_tokens": MAX_TOKENS,
                  "temperature": 0, "seed": 1}},
    ]  # fmt: skip
    batches = {}
    for endpoint, request_lines in (("/v1/chat/completions", chat_lines),
                                    ("/v1/completions", completion_lines)):  # fmt: skip
        body = b"".join(orjson.dumps(line) + b"\n" for line in request_lines)
        uploaded = client.files.create(file=("in.jsonl", body), purpose="batch")
        # When each runs as a batch
        batches[endpoint] = client.batches.create(
            input_file_id=uploaded.id, endpoint=endpoint,  # type: ignore[arg-type]
            completion_window="24h",
        ).id  # fmt: skip
    outputs = {}
    for endpoint, batch_id in batches.items():
        found: Any = None

        def final(batch_id: str = batch_id) -> bool:
            nonlocal found
            found = client.batches.retrieve(batch_id)
            return found.status in ("completed", "failed", "cancelled", "expired")

        wait_for(final, timeout_s=180, what=f"batch {batch_id} to end")
        # Then both complete, with nothing in their error files
        assert found.status == "completed", found
        assert found.error_file_id is not None
        assert found.output_file_id is not None
        assert client.files.content(found.error_file_id).content == b""
        raw = client.files.content(found.output_file_id).content
        outputs[endpoint] = [orjson.loads(x) for x in raw.splitlines()]

    # And the chat answers are chat.completion objects equal to infq's own results for
    # the prompts transformers renders from the same messages
    chats = outputs["/v1/chat/completions"]
    assert [line["custom_id"] for line in chats] == ["chat-0", "chat-1"]
    own = _own_texts(world, [*prompts, "A long time ago"])
    for line, expected in zip(chats, own[:2], strict=True):
        body = line["response"]["body"]
        assert body["object"] == "chat.completion"
        assert body["id"].startswith("chatcmpl-")
        assert body["model"] == MODEL
        choice = body["choices"][0]
        assert choice["message"] == {"role": "assistant", "content": expected}
        assert choice["finish_reason"] in ("stop", "length")
        usage = body["usage"]
        assert usage["prompt_tokens"] > 0
        assert usage["completion_tokens"] > 0
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    [plain] = outputs["/v1/completions"]
    body = plain["response"]["body"]
    assert (plain["custom_id"], body["object"]) == ("plain", "text_completion")
    assert body["choices"][0]["text"] == own[2]
    assert body["usage"]["prompt_tokens"] > 0


def test_chat_lines_a_generate_model_cannot_answer_fail_the_batch_line_by_line(
    world: dict[str, Any],
) -> None:
    client = OpenAI(base_url=f"{world['api']}/openai/v1", api_key=world["key"], max_retries=0)
    messages = CHATS[0]
    bodies = [
        {"model": MODEL, "messages": messages},
        {"model": "echo", "messages": messages},  # not a generate model
        {"model": PLAIN, "messages": messages},  # no chat template
        {"model": MODEL, "messages": messages, "max_tokens": 50},  # over the entry's 12
        {"model": MODEL, "messages": messages, "tools": []},
    ]
    body = b"".join(
        orjson.dumps({"custom_id": f"r{n}", "method": "POST", "url": "/v1/chat/completions",
                      "body": b}) + b"\n"
        for n, b in enumerate(bodies)
    )  # fmt: skip
    uploaded = client.files.create(file=("bad.jsonl", body), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert batch.status == "failed"
    assert batch.errors is not None
    assert batch.errors.data is not None
    found = [(e.line, e.code, e.param) for e in batch.errors.data]
    assert found[:3] == [
        (2, "unsupported_task", "body.model"),
        (3, "chat_template_missing", "body.messages"),
        (4, "invalid_params", "body"),
    ]
    assert found[3] == (5, "unsupported_parameter", "body.tools")
    assert "max_new_tokens" in (batch.errors.data[2].message or "")

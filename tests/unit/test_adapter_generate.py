"""The ``generate`` adapter (:mod:`workers.adapters.generate`) against transformers itself,
on a tiny random GPT-2 built offline (its logits are made decisive, so greedy decoding
does not flip on float noise; see :func:`tests.tiny_models.build_gpt2`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from infq.catalogue.params import GenerateParams
from infq.errors import PermanentFailure
from tests.tiny_models import build_gpt2
from workers.adapters.base import LoadSpec
from workers.adapters.generate import Generator, load

PROMPTS = [
    "It",
    "It is a truth universally acknowledged",
    "Mr. Darcy",
    '"My dear Mr. Bennet," said his lady to him one day, "have you heard that '
    'Netherfield Park is let at last?"',
    "x",
    "She was the youngest of the two daughters of a most affectionate father",
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_gpt2(tmp_path_factory.mktemp("gpt2"))


@pytest.fixture(scope="module")
def generator(folder: Path) -> Generator:
    return load(spec_for(folder))


@pytest.fixture(scope="module")
def reference(folder: Path) -> Reference:
    """transformers' own tokenizer and model for the folder, to compare with."""
    return Reference(
        AutoTokenizer.from_pretrained(folder, local_files_only=True),
        AutoModelForCausalLM.from_pretrained(folder, local_files_only=True),
    )


def spec_for(folder: Path, **overrides: Any) -> LoadSpec:
    return LoadSpec(model="tiny-gpt2", revision="1", folder=folder, **overrides)


def params(**given: Any) -> dict[str, Any]:
    """Params as a worker receives them: validated, with max_new_tokens filled in."""
    return GenerateParams(**{"max_new_tokens": 12, **given}).model_dump()


class Reference(NamedTuple):
    tokenizer: Any
    model: Any

    def greedy(self, prompt: str) -> list[int]:
        """New token ids from transformers, the prompt alone (no padding at all)."""
        encoded = self.tokenizer(prompt, return_tensors="pt")
        with torch.inference_mode():
            out = self.model.generate(
                **encoded,
                max_new_tokens=12,
                do_sample=False,
                pad_token_id=self.tokenizer.eos_token_id,
            )
        return [int(t) for t in out[0, encoded["input_ids"].shape[1] :]]


def test_greedy_text_matches_transformers_on_each_prompt_alone(
    reference: Reference, generator: Generator
) -> None:
    got = generator.predict("generate", PROMPTS, params())
    tokenizer = reference.tokenizer
    for prompt, result in zip(PROMPTS, got, strict=True):
        expected = reference.greedy(prompt)
        assert result["text"] == tokenizer.decode(expected, skip_special_tokens=True)
        assert result["prompt_tokens"] == len(tokenizer(prompt)["input_ids"])
        assert result["truncated"] is False
        if result["finish_reason"] == "length":
            assert result["completion_tokens"] == 12
        else:
            assert result["completion_tokens"] == len(expected)


def test_greedy_tokens_are_the_same_alone_and_in_a_padded_batch(generator: Generator) -> None:
    # Given prompts of 1 to ~30 tokens, batched (left padding) and one at a time
    prepared = generator.prepare(PROMPTS, params())
    assert len(set(prepared.prompt_tokens)) >= 4
    batched = generator.forward(prepared)

    # Then every row holds exactly the tokens its prompt gives alone
    for i, prompt in enumerate(PROMPTS):
        alone = generator.forward(generator.prepare([prompt], params()))[0]
        assert batched[i, : len(alone)].tolist() == alone.tolist()
    assert generator.predict("generate", PROMPTS, params()) == [
        generator.predict("generate", [p], params())[0] for p in PROMPTS
    ]


def test_a_stop_string_cuts_the_text_and_ends_the_row(generator: Generator) -> None:
    full = generator.predict("generate", PROMPTS[:3], params())
    # A stop string the first prompt does produce: two ASCII characters past its start.
    text = full[0]["text"]
    start = next(
        i for i in range(2, len(text) - 1) if text[i : i + 2].isascii() and text[i : i + 2].strip()
    )
    stop = text[start : start + 2]

    got = generator.predict("generate", PROMPTS[:3], params(stop=[stop, "never-produced"]))

    assert got[0]["text"] == text[: text.index(stop)]
    assert got[0]["finish_reason"] == "stop"
    assert got[0]["completion_tokens"] < 12
    for before, after in zip(full[1:], got[1:], strict=True):
        if stop not in before["text"]:
            assert after == before  # neighbours are unaffected


def test_eos_ends_a_row_with_finish_reason_stop(generator: Generator) -> None:
    prepared = generator.prepare(["It", "x"], params())
    eos = generator.tokenizer.eos_token_id
    output = torch.tensor([[40, 69, eos, eos], [40, 69, 79, 12]])

    got = generator.finish(prepared, output)

    assert got[0]["finish_reason"] == "stop"
    assert got[0]["completion_tokens"] == 3  # EOS counts
    assert got[0]["text"] == generator.tokenizer.decode([40, 69])
    assert got[1]["finish_reason"] == "length"
    assert got[1]["completion_tokens"] == 4


def test_seeded_sampling_repeats_alone_or_among_other_prompts(generator: Generator) -> None:
    sampling = params(temperature=1.0, top_p=0.9, seed=1234)
    target = PROMPTS[1]

    alone = generator.predict("generate", [target], sampling)[0]
    among = generator.predict("generate", [PROMPTS[3], target, PROMPTS[0]], sampling)[1]
    again = generator.predict("generate", [target], sampling)[0]

    assert alone == among == again
    others = {
        generator.predict("generate", [target], {**sampling, "seed": s})[0]["text"]
        for s in range(1, 5)
    }
    assert len(others | {alone["text"]}) > 1  # the seed does drive the sampling


def test_long_prompts_keep_their_end(folder: Path, reference: Reference) -> None:
    model = load(spec_for(folder, max_input_tokens=5, max_new_tokens=12))
    tokenizer = reference.tokenizer
    got = model.predict("generate", [PROMPTS[1], PROMPTS[2]], params())

    assert [r["truncated"] for r in got] == [True, False]
    assert [r["prompt_tokens"] for r in got] == [5, 3]
    assert model.token_lengths([PROMPTS[1], PROMPTS[2]]) == [5, 3]
    tail = tokenizer.decode(tokenizer(PROMPTS[1])["input_ids"][-5:])
    expected = reference.greedy(tail)
    assert got[0]["text"] == tokenizer.decode(expected, skip_special_tokens=True)


def test_room_for_new_tokens_is_kept_in_the_context(folder: Path) -> None:
    model = load(spec_for(folder))
    assert model.prompt_limit(12) == 128 - 12
    # The catalogue's bound (128 here) fills the context: token counts cap at the context.
    assert model.token_lengths([" ".join(["Netherfield"] * 200)]) == [128]
    long_prompt = " ".join(["Netherfield"] * 200)
    got = model.predict("generate", [long_prompt], params(max_new_tokens=100))[0]
    assert got["truncated"] is True
    assert got["prompt_tokens"] == 28
    with pytest.raises(PermanentFailure) as failure:
        model.predict("generate", ["It"], params(max_new_tokens=128))
    assert failure.value.code == "max_new_tokens_too_large"


def test_reject_fails_long_prompts_with_input_too_long(folder: Path) -> None:
    model = load(spec_for(folder, max_input_tokens=5, on_long_input="reject"))
    with pytest.raises(PermanentFailure) as failure:
        model.predict("generate", PROMPTS[:2], params())
    assert failure.value.code == "input_too_long"
    assert len(model.predict("generate", [PROMPTS[0], PROMPTS[2]], params())) == 2


def test_an_empty_prompt_starts_from_bos_and_an_empty_batch_gives_nothing(
    generator: Generator,
) -> None:
    got = generator.predict("generate", [""], params())[0]
    assert got["prompt_tokens"] == 1
    assert got["completion_tokens"] >= 1
    assert generator.predict("generate", [], params()) == []

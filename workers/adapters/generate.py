"""``generate``: text continuation with a causal language model (``AutoModelForCausalLM``).

Prompts of a call are generated together, left-padded: every row then ends at the same
column, where new tokens are appended, and ``generate`` derives position ids from the
attention mask, so a prompt gets the same greedy text alone or among longer ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
import transformers

from infq.errors import ConfigurationError, PermanentFailure
from workers.adapters.base import (
    LoadSpec,
    Staged,
    input_limit,
    load_module,
    load_tokenizer,
    long_inputs,
    pin,
    to_device,
)


@dataclass(frozen=True)
class PreparedPrompts:
    """Left-padded prompts and the job's decoding params."""

    input_ids: torch.Tensor  # (batch, longest prompt), pad on the left
    attention_mask: torch.Tensor
    prompt_tokens: list[int]
    truncated: list[bool]
    max_new_tokens: int
    temperature: float
    top_p: float
    seed: int | None
    stop: tuple[str, ...]


class _StopOnText(transformers.StoppingCriteria):
    """Ends a row once its new text contains a stop string.

    The same test as ``finish`` (decoded new tokens, searched as text), so a row never
    stops early for a string ``finish`` would not cut at, e.g. one straddling the prompt.
    """

    def __init__(self, tokenizer: Any, stop: tuple[str, ...], prompt_width: int) -> None:
        self.tokenizer = tokenizer
        self.stop = stop
        self.prompt_width = prompt_width

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        texts = self.tokenizer.batch_decode(
            input_ids[:, self.prompt_width :], skip_special_tokens=True
        )
        done = [any(s in text for s in self.stop) for text in texts]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class Generator(Staged):
    """A loaded causal LM: greedy when ``temperature`` is 0, else sampling."""

    def __init__(self, spec: LoadSpec) -> None:
        self.spec = spec
        self.model: Any = cast(Any, load_module(transformers.AutoModelForCausalLM, spec))
        self.tokenizer: Any = load_tokenizer(spec)
        # Left: new tokens follow every prompt directly. Truncation keeps a prompt's end,
        # the part the continuation depends on.
        self.tokenizer.padding_side = "left"
        self.tokenizer.truncation_side = "left"
        declared = self.model.generation_config.eos_token_id
        eos = [declared] if isinstance(declared, int) else list(declared or [])
        if self.tokenizer.eos_token_id is not None and self.tokenizer.eos_token_id not in eos:
            eos.append(self.tokenizer.eos_token_id)
        if not eos:
            raise ConfigurationError(
                f"{spec.where()}: neither the model nor its tokenizer names an "
                "end-of-sequence token, so generation could never stop early"
            )
        self.eos_ids: list[int] = eos
        pad = self.tokenizer.pad_token_id
        self.pad_id: int = eos[0] if pad is None else int(pad)
        bos = self.tokenizer.bos_token_id
        self.bos_id: int = eos[0] if bos is None else int(bos)
        # The model's context, whatever the catalogue's max_input_tokens says about prompts.
        self.context = input_limit(
            dataclasses.replace(spec, max_input_tokens=None), self.tokenizer, self.model.config
        )

    def prompt_limit(self, max_new_tokens: int) -> int:
        """Tokens a prompt may keep: the catalogue's ``max_input_tokens``, and the room
        ``max_new_tokens`` leaves in the model's context (below 1: no room at all)."""
        room = self.context - max_new_tokens
        limit = self.spec.max_input_tokens
        return room if limit is None else min(room, limit)

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        """Prompt tokens after truncation, with room kept for the catalogue's
        ``max_new_tokens`` (the default, and the bound of every job's); where that bound
        fills the whole context, jobs must ask for fewer, so only the context counts."""
        limit = self.prompt_limit(self.spec.max_new_tokens)
        if limit < 1:
            limit = self.prompt_limit(0)
        return [min(n, limit) for n in self._lengths(texts)]

    def _lengths(self, texts: Sequence[str]) -> list[int]:
        ids = self.tokenizer(list(texts), truncation=False)["input_ids"] if texts else []
        return [max(len(x), 1) for x in ids]  # an empty prompt starts from BOS

    def prepare(self, texts: Sequence[str], params: dict[str, Any]) -> PreparedPrompts:
        """Tokenize, truncate (or reject) and left-pad the prompts."""
        max_new = params.get("max_new_tokens") or self.spec.max_new_tokens
        limit = self.prompt_limit(int(max_new))
        if limit < 1:
            raise PermanentFailure(
                "max_new_tokens_too_large",
                f"max_new_tokens={max_new} leaves no room for a prompt in the "
                f"{self.context}-token context of model {self.spec.model!r}",
            )
        truncated = long_inputs(self.spec, self.tokenizer, texts, limit=limit) if texts else []
        ids: list[list[int]] = (
            self.tokenizer(list(texts), truncation=True, max_length=limit)["input_ids"]
            if texts
            else []
        )
        ids = [row or [self.bos_id] for row in ids]
        width = max((len(row) for row in ids), default=0)
        input_ids = torch.full((len(ids), width), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(ids), width), dtype=torch.long)
        for i, row in enumerate(ids):
            if row:
                input_ids[i, width - len(row) :] = torch.tensor(row, dtype=torch.long)
                attention_mask[i, width - len(row) :] = 1
        seed = params.get("seed")
        host = pin({"input_ids": input_ids, "attention_mask": attention_mask}, self.spec.device)
        return PreparedPrompts(
            input_ids=host["input_ids"],
            attention_mask=host["attention_mask"],
            prompt_tokens=[len(row) for row in ids],
            truncated=truncated,
            max_new_tokens=int(max_new),
            temperature=float(params.get("temperature") or 0.0),
            top_p=float(params.get("top_p") or 1.0),
            seed=None if seed is None else int(seed),
            stop=tuple(params.get("stop") or ()),
        )

    def forward(self, prepared: PreparedPrompts) -> torch.Tensor:
        """New token ids, ``(batch, steps)`` on the CPU; rows that ended early are
        filled with the pad token after their end.

        Seeded sampling runs each prompt alone, seeding before each: a batched draw
        depends on the whole batch (its random numbers are shared out row by row and
        padding changes the arithmetic), so it repeats only for the same batch
        composition; alone, a seeded job gives the same text whatever its neighbours.
        """
        if prepared.input_ids.shape[0] == 0:
            return torch.empty(0, 0, dtype=torch.long)
        if prepared.temperature > 0 and prepared.seed is not None:
            rows = []
            for i in range(prepared.input_ids.shape[0]):
                keep = prepared.attention_mask[i].bool()
                torch.manual_seed(prepared.seed)
                rows.append(
                    self._generate(
                        prepared,
                        prepared.input_ids[i, keep][None],
                        prepared.attention_mask[i, keep][None],
                    )[0]
                )
            steps = max(len(row) for row in rows)
            out = torch.full((len(rows), steps), self.pad_id, dtype=torch.long)
            for i, row in enumerate(rows):
                out[i, : len(row)] = row
            return out
        return self._generate(prepared, prepared.input_ids, prepared.attention_mask)

    def _generate(
        self, prepared: PreparedPrompts, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        sampling = prepared.temperature > 0
        options: dict[str, Any] = {"do_sample": sampling}
        if sampling:
            options.update(temperature=prepared.temperature, top_p=prepared.top_p)
        if prepared.stop:
            criteria = _StopOnText(self.tokenizer, prepared.stop, input_ids.shape[1])
            options["stopping_criteria"] = transformers.StoppingCriteriaList([criteria])
        on_device = to_device(
            {"input_ids": input_ids, "attention_mask": attention_mask}, self.spec.device
        )
        with torch.inference_mode():
            out: torch.Tensor = self.model.generate(
                **on_device,
                max_new_tokens=prepared.max_new_tokens,
                pad_token_id=self.pad_id,
                eos_token_id=self.eos_ids,
                **options,
            )
        return out[:, input_ids.shape[1] :].cpu()

    def finish(self, prepared: PreparedPrompts, output: torch.Tensor) -> list[Any]:
        """Per prompt: the new text (cut before the first stop string), why it ended,
        and token counts.

        ``completion_tokens`` counts tokens up to and including EOS; when a stop string
        cut the text, it is the kept text re-encoded, which may differ by a token from
        what the model emitted where the cut splits a token.
        """
        results: list[Any] = []
        for row, prompt_tokens, truncated in zip(
            output.tolist(), prepared.prompt_tokens, prepared.truncated, strict=True
        ):
            end = next((i for i, t in enumerate(row) if t in self.eos_ids), None)
            tokens = row if end is None else row[:end]
            text = self.tokenizer.decode(tokens, skip_special_tokens=True)
            cut = min((i for i in (text.find(s) for s in prepared.stop) if i >= 0), default=-1)
            if cut >= 0:
                text = text[:cut]
                count = len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
                reason = "stop"
            elif end is not None:
                count, reason = end + 1, "stop"
            else:
                count, reason = len(tokens), "length"
            results.append(
                {
                    "text": text,
                    "finish_reason": reason,
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": count,
                    "truncated": truncated,
                }
            )
        return results


def load(spec: LoadSpec) -> Generator:
    """The adapter's entry point (see :mod:`workers.loading`)."""
    return Generator(spec)

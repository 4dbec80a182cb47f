"""Continued masked-language-model training on patent titles and abstracts.

Masking follows BERT: about ``mlm_probability`` of the tokens are chosen; of those
80 % become ``[MASK]``, 10 % a random token and 10 % stay. With whole-word masking
every piece of a chosen word is masked together, so the model cannot fill
``##도체`` from a visible ``반``. Words come from the fast tokenizer's ``word_ids``
(the pre-tokeniser's split: spaces and punctuation); a tokenizer without them
falls back to token-level masking.

For BERT models the prediction head runs only on the masked positions, which
saves most of the vocabulary projection on a CPU.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from training.loop import (
    LOSS_FILE,
    LoopSettings,
    LossLog,
    epoch_order,
    find_checkpoint,
    load_trainer_state,
    make_optimizer,
    save_checkpoint,
    truncate_losses,
)
from training.modeling import encoder_of, load_mlm, save_hf

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100


@dataclass(frozen=True)
class TokenizedText:
    """Token ids of one text and the word index of each token (None for special tokens)."""

    input_ids: list[int]
    word_ids: list[int | None]


class TokenizedCorpus(Sequence[TokenizedText]):
    """Token and word ids of many texts in flat int32 arrays.

    Python lists of ints would take about 40 bytes per token, too much for the
    titles and abstracts of a full corpus (hundreds of millions of tokens).
    """

    def __init__(self, ids: np.ndarray, words: np.ndarray, offsets: np.ndarray) -> None:
        self._ids = ids
        self._words = words
        self._offsets = offsets

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, index: int) -> TokenizedText:
        if not -len(self) <= index < len(self):
            raise IndexError(f"text {index} out of range for {len(self)} texts")
        index %= len(self)
        start, end = self._offsets[index], self._offsets[index + 1]
        words = self._words[start:end].tolist()
        return TokenizedText(self._ids[start:end].tolist(),
                             [None if word < 0 else word for word in words])

    def __iter__(self) -> Iterator[TokenizedText]:
        for index in range(len(self)):
            yield self[index]

    @property
    def tokens(self) -> int:
        """Total number of tokens, special tokens included."""
        return int(self._offsets[-1])


def tokenize_texts(
    tokenizer, texts: Sequence[str], max_seq_length: int, chunk_size: int = 10_000
) -> tuple[TokenizedCorpus, bool]:
    """Tokenize ``texts`` with truncation to ``max_seq_length`` tokens, ``chunk_size`` at a time.

    Returns:
        ``(texts, has_words)``: ``has_words`` is False when the tokenizer gives no
        word ids, so each token is its own word.
    """
    ids_parts: list[np.ndarray] = []
    word_parts: list[np.ndarray] = []
    lengths: list[int] = []
    has_words = True
    special = set(tokenizer.all_special_ids)
    for first in range(0, len(texts), chunk_size):
        encoded = tokenizer(list(texts[first:first + chunk_size]), truncation=True,
                            max_length=max_seq_length)
        has_words = has_words and bool(getattr(encoded, "is_fast", False))
        chunk_ids: list[int] = []
        chunk_words: list[int] = []
        for index, input_ids in enumerate(encoded["input_ids"]):
            if has_words:
                word_ids = encoded.word_ids(index)
            else:
                word_ids = [None if token in special else position
                            for position, token in enumerate(input_ids)]
            chunk_ids.extend(input_ids)
            chunk_words.extend(-1 if word is None else word for word in word_ids)
            lengths.append(len(input_ids))
        ids_parts.append(np.asarray(chunk_ids, dtype=np.int32))
        word_parts.append(np.asarray(chunk_words, dtype=np.int32))
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    ids = np.concatenate(ids_parts) if ids_parts else np.zeros(0, dtype=np.int32)
    words = np.concatenate(word_parts) if word_parts else np.zeros(0, dtype=np.int32)
    return TokenizedCorpus(ids, words, offsets), has_words


def mask_batch(
    texts: Sequence[TokenizedText],
    tokenizer,
    *,
    mlm_probability: float,
    whole_word: bool,
    rng: random.Random,
) -> dict[str, torch.Tensor]:
    """Pad a batch and mask it; returns ``input_ids``, ``attention_mask`` and ``labels``.

    Every text gets at least one masked token when it has any non-special token.
    ``labels`` contains the original id at masked positions and -100 elsewhere.
    """
    if not 0 < mlm_probability < 1:
        raise ValueError(f"mlm_probability must be in (0, 1), found {mlm_probability!r}")
    width = max(len(text.input_ids) for text in texts)
    input_ids = torch.full((len(texts), width), tokenizer.pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(texts), width), dtype=torch.long)
    labels = torch.full((len(texts), width), IGNORE_INDEX, dtype=torch.long)
    special_ids = set(tokenizer.all_special_ids)
    vocab_size = len(tokenizer)

    for row, text in enumerate(texts):
        length = len(text.input_ids)
        input_ids[row, :length] = torch.tensor(text.input_ids)
        attention_mask[row, :length] = 1
        units = _masking_units(text, whole_word)
        candidates = sum(len(unit) for unit in units)
        if candidates == 0:
            continue
        target = max(1, round(mlm_probability * candidates))
        rng.shuffle(units)
        chosen: list[int] = []
        for unit in units:
            if len(chosen) >= target:
                break
            if len(chosen) + len(unit) > target and chosen:
                continue
            chosen.extend(unit)
        for position in chosen:
            original = text.input_ids[position]
            labels[row, position] = original
            draw = rng.random()
            if draw < 0.8:
                input_ids[row, position] = tokenizer.mask_token_id
            elif draw < 0.9:
                replacement = rng.randrange(vocab_size)
                while replacement in special_ids:
                    replacement = rng.randrange(vocab_size)
                input_ids[row, position] = replacement
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def _masking_units(text: TokenizedText, whole_word: bool) -> list[list[int]]:
    units: dict[int, list[int]] = {}
    for position, word in enumerate(text.word_ids):
        if word is None:
            continue
        key = word if whole_word else position
        units.setdefault(key, []).append(position)
    return list(units.values())


def mlm_loss(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Return the masked-token cross-entropy; BERT heads run on masked positions only."""
    labels = batch["labels"]
    head = getattr(model, "cls", None)
    if head is None:
        return model(**batch).loss
    hidden = encoder_of(model)(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
    ).last_hidden_state
    selected = labels != IGNORE_INDEX
    logits = head(hidden[selected])
    return torch.nn.functional.cross_entropy(logits.float(), labels[selected])


def train_mlm(
    start: str | Path,
    texts: Sequence[str],
    settings: LoopSettings,
    step_dir: Path,
    *,
    max_seq_length: int,
    mlm_probability: float = 0.15,
    whole_word_mask: bool = True,
    device: str = "cpu",
    show_progress: bool | None = None,
):
    """Continue MLM training from ``start`` on ``texts``; save to ``step_dir/model``.

    Resumes from ``step_dir/checkpoint`` when one exists.

    Args:
        start: a Hugging Face folder (or hub id) with a tokenizer; a missing MLM head
            is initialised.
        mlm_probability: share of tokens masked (default 0.15, as in BERT).
        whole_word_mask: mask all pieces of a word together (default True).

    Returns:
        ``(model, tokenizer, summary)``.
    """
    from transformers import AutoTokenizer

    if not texts:
        raise ValueError("MLM training needs at least one text")
    step_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = find_checkpoint(step_dir)
    source = checkpoint or start
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    if tokenizer.mask_token_id is None:
        raise ValueError(f"the tokenizer of {str(start)!r} has no mask token; "
                         "MLM training needs one")
    model = load_mlm(source).to(device)
    model.train()

    tokenized, has_words = tokenize_texts(tokenizer, texts, max_seq_length)
    whole_word = whole_word_mask and has_words
    if whole_word_mask and not has_words:
        logger.warning("the tokenizer of %s gives no word ids; masking single tokens", start)
    batches_per_epoch = len(tokenized) // settings.batch_size or 1
    total_steps = settings.total_steps(batches_per_epoch)
    optimizer, scheduler = make_optimizer(model, settings, total_steps)
    done = 0
    if checkpoint is not None:
        done = load_trainer_state(checkpoint, optimizer, scheduler)
        truncate_losses(step_dir / LOSS_FILE, done)
        logger.info("resuming MLM training from %s at step %d of %d",
                    checkpoint, done, total_steps)
    loss_log = LossLog(step_dir / LOSS_FILE, settings.log_every, total_steps)
    if show_progress is None:
        show_progress = logger.getEffectiveLevel() <= logging.INFO
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda"
                else torch.autocast("cpu", enabled=False))

    started = time.monotonic()
    step = 0
    epoch = 0
    with tqdm(total=total_steps, initial=done, desc="MLM training", unit="step",
              disable=not show_progress) as bar:
        while step < total_steps:
            order = epoch_order(len(tokenized), epoch, settings.seed)
            for first in range(0, batches_per_epoch * settings.batch_size, settings.batch_size):
                if step >= total_steps:
                    break
                step += 1
                if step <= done:
                    continue
                rows = [tokenized[index] for index in order[first:first + settings.batch_size]]
                rng = random.Random(settings.seed * 1_000_003 + step)
                batch = mask_batch(rows, tokenizer, mlm_probability=mlm_probability,
                                   whole_word=whole_word, rng=rng)
                batch = {key: value.to(device) for key, value in batch.items()}
                with autocast:
                    loss = mlm_loss(model, batch)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                loss_log.add(step, float(loss.detach()), scheduler.get_last_lr()[0])
                bar.update(1)
                if step % settings.checkpoint_every == 0 and step < total_steps:
                    save_checkpoint(step_dir, lambda path: save_hf(model, tokenizer, path),
                                    optimizer, scheduler, step)
            epoch += 1

    model.eval()
    save_hf(model, tokenizer, step_dir / "model")
    summary = {
        "steps": total_steps,
        "resumed_at_step": done,
        "texts": len(tokenized),
        "tokens": tokenized.tokens,
        "whole_word_mask": whole_word,
        "mlm_probability": mlm_probability,
        "batch_size": settings.batch_size,
        "seconds": round(time.monotonic() - started, 1),
        **loss_log.summary(),
    }
    return model, tokenizer, summary

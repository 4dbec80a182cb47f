"""Contrastive sentence training with in-batch negatives (MultipleNegativesRankingLoss).

For a batch of (anchor, positive) pairs the loss is the cross-entropy of picking
each anchor's own positive among all positives of the batch, with cosine
similarities times ``scale``. Two pairs that share a patent or a text never sit in
the same batch, because the other pair's positive would be a false negative.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

import torch
from tqdm.auto import tqdm

from training.corpus import TextPair
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
from training.modeling import sentence_transformer_from_hf

logger = logging.getLogger(__name__)


def group_batches(pairs: Sequence[TextPair], order: Sequence[int], batch_size: int) -> list[list[int]]:
    """Group pair indices into batches in which no patent and no text occurs twice.

    A pair that conflicts with the batch being filled moves to the next batch, so
    the order changes only locally. A last batch with one pair is dropped because
    it has no negatives.
    """
    pending = deque(order)
    batches: list[list[int]] = []
    while pending:
        batch: list[int] = []
        keys: set[str] = set()
        deferred: list[int] = []
        while pending and len(batch) < batch_size:
            index = pending.popleft()
            pair = pairs[index]
            pair_keys = {f"p:{pair.patent}", f"t:{pair.anchor}", f"t:{pair.positive}"}
            if keys & pair_keys:
                deferred.append(index)
                continue
            batch.append(index)
            keys |= pair_keys
        pending.extendleft(reversed(deferred))
        if len(batch) < 2:
            break
        batches.append(batch)
    return batches


def _to_device(features, device: str) -> dict:
    return {key: value.to(device) if torch.is_tensor(value) else value
            for key, value in features.items()}


def _autocast(device: str):
    # NOTE: the CUDA path has not run in this project's tests, which are CPU only.
    if device == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def train_sentence_model(
    start: str | Path,
    pairs: Sequence[TextPair],
    settings: LoopSettings,
    step_dir: Path,
    *,
    max_seq_length: int,
    scale: float = 20.0,
    device: str = "cpu",
    show_progress: bool | None = None,
):
    """Train a sentence model on ``pairs`` and save it to ``step_dir/model``.

    Resumes from ``step_dir/checkpoint`` when one exists: the weights, optimizer,
    schedule and the position in the data order are restored.

    Args:
        start: a Hugging Face encoder folder or a sentence-transformers folder.
        scale: inverse temperature of the loss (default 20, the library default).
        device: torch device; on ``cuda`` the forward pass runs in bfloat16 autocast.

    Returns:
        ``(model, summary)``: the trained ``SentenceTransformer`` and a dict with
        steps, pair counts, first and last loss and seconds.
    """
    from sentence_transformers.sentence_transformer.losses import (
        MultipleNegativesRankingLoss,
    )

    if len(pairs) < 2:
        raise ValueError(f"sentence training needs at least 2 pairs, found {len(pairs)}")
    step_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = find_checkpoint(step_dir)
    model = sentence_transformer_from_hf(checkpoint or start, max_seq_length, device=device)
    model.train()
    loss_fn = MultipleNegativesRankingLoss(model, scale=scale)

    first_epoch = group_batches(pairs, epoch_order(len(pairs), 0, settings.seed),
                                settings.batch_size)
    total_steps = settings.total_steps(len(first_epoch))
    optimizer, scheduler = make_optimizer(model, settings, total_steps)
    done = 0
    if checkpoint is not None:
        done = load_trainer_state(checkpoint, optimizer, scheduler)
        truncate_losses(step_dir / LOSS_FILE, done)
        logger.info("resuming sentence training from %s at step %d of %d",
                    checkpoint, done, total_steps)
    loss_log = LossLog(step_dir / LOSS_FILE, settings.log_every, total_steps)
    if show_progress is None:
        show_progress = logger.getEffectiveLevel() <= logging.INFO

    started = time.monotonic()
    step = 0
    epoch = 0
    with tqdm(total=total_steps, initial=done, desc="sentence training", unit="step",
              disable=not show_progress) as bar:
        while step < total_steps:
            batches = first_epoch if epoch == 0 else group_batches(
                pairs, epoch_order(len(pairs), epoch, settings.seed), settings.batch_size)
            for batch in batches:
                if step >= total_steps:
                    break
                step += 1
                if step <= done:
                    continue
                anchors = model.preprocess([pairs[index].anchor for index in batch])
                positives = model.preprocess([pairs[index].positive for index in batch])
                with _autocast(device):
                    loss = loss_fn([_to_device(anchors, device),
                                    _to_device(positives, device)], None)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                loss_log.add(step, float(loss.detach()), scheduler.get_last_lr()[0])
                bar.update(1)
                if step % settings.checkpoint_every == 0 and step < total_steps:
                    save_checkpoint(step_dir, model.save, optimizer, scheduler, step)
            epoch += 1

    model.eval()
    model.save(str(step_dir / "model"), safe_serialization=True)
    kinds: dict[str, int] = {}
    for pair in pairs:
        kinds[pair.kind] = kinds.get(pair.kind, 0) + 1
    summary = {
        "steps": total_steps,
        "resumed_at_step": done,
        "pairs": len(pairs),
        "pair_kinds": kinds,
        "batch_size": settings.batch_size,
        "seconds": round(time.monotonic() - started, 1),
        **loss_log.summary(),
    }
    return model, summary

"""Pieces shared by the MLM and sentence training loops: checkpoints, loss log, schedule.

A checkpoint is a folder with the model files and ``trainer_state.pt`` (optimizer,
scheduler, global step). It is written next to the live one and swapped in by
renames, so an interrupted save leaves the previous checkpoint usable.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

CHECKPOINT = "checkpoint"
STATE_FILE = "trainer_state.pt"
LOSS_FILE = "losses.csv"


@dataclass
class LoopSettings:
    """Optimisation settings of one training step."""

    epochs: float = 1.0
    batch_size: int = 32
    learning_rate: float = 5e-5
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_steps: int | None = None
    checkpoint_every: int = 200
    log_every: int = 20
    seed: int = 42

    def __post_init__(self) -> None:
        if self.epochs <= 0:
            raise ValueError(f"epochs must be positive, found {self.epochs!r}")
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be at least 2, found {self.batch_size!r}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, found {self.learning_rate!r}")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio must be in [0, 1), found {self.warmup_ratio!r}")
        if self.max_steps is not None and self.max_steps <= 0:
            raise ValueError(f"max_steps must be positive or None, found {self.max_steps!r}")
        for name in ("checkpoint_every", "log_every"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, found {getattr(self, name)!r}")

    def total_steps(self, batches_per_epoch: int) -> int:
        """Return the optimiser steps of the whole run (``max_steps`` caps it)."""
        steps = max(1, math.ceil(self.epochs * batches_per_epoch))
        return min(steps, self.max_steps) if self.max_steps else steps


@dataclass
class LossLog:
    """Per-step losses, appended to ``losses.csv`` and summarised in the logs."""

    path: Path
    log_every: int
    total_steps: int
    started: float = field(default_factory=time.monotonic)
    window: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.path.is_file():
            with self.path.open(encoding="utf-8") as handle:
                self.losses = [float(row["loss"]) for row in csv.DictReader(handle)]
        else:
            with self.path.open("w", encoding="utf-8", newline="") as handle:
                csv.writer(handle).writerow(["step", "loss", "learning_rate", "elapsed_s"])

    def add(self, step: int, loss: float, learning_rate: float) -> None:
        self.losses.append(loss)
        self.window.append(loss)
        with self.path.open("a", encoding="utf-8", newline="") as handle:
            csv.writer(handle).writerow(
                [step, f"{loss:.6f}", f"{learning_rate:.3e}",
                 f"{time.monotonic() - self.started:.1f}"])
        if step % self.log_every == 0 or step == self.total_steps:
            logger.info("step %d/%d loss %.4f (mean of last %d) lr %.2e",
                        step, self.total_steps, sum(self.window) / len(self.window),
                        len(self.window), learning_rate)
            self.window.clear()

    def summary(self) -> dict[str, float]:
        """Return mean loss over the first and last tenth of the steps (at least one step)."""
        if not self.losses:
            return {}
        tenth = max(1, len(self.losses) // 10)
        return {
            "loss_first": sum(self.losses[:tenth]) / tenth,
            "loss_last": sum(self.losses[-tenth:]) / tenth,
            "steps_logged": len(self.losses),
        }


def make_optimizer(model: torch.nn.Module, settings: LoopSettings, total_steps: int):
    """Return AdamW (no decay on biases and LayerNorm) and a linear warm-up/decay schedule."""
    from transformers import get_linear_schedule_with_warmup

    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        (no_decay if parameter.ndim < 2 or "LayerNorm" in name else decay).append(parameter)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": settings.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=settings.learning_rate,
    )
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(settings.warmup_ratio * total_steps), total_steps
    )
    return optimizer, scheduler


def save_checkpoint(
    step_dir: Path,
    save_model: Callable[[Path], None],
    optimizer,
    scheduler,
    step: int,
) -> None:
    """Write a checkpoint for ``step`` and swap it in place of the previous one."""
    live = step_dir / CHECKPOINT
    staging = step_dir / f"{CHECKPOINT}.tmp"
    previous = step_dir / f"{CHECKPOINT}.old"
    shutil.rmtree(staging, ignore_errors=True)
    save_model(staging)
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "step": step}, staging / STATE_FILE)
    shutil.rmtree(previous, ignore_errors=True)
    if live.exists():
        os.replace(live, previous)
    os.replace(staging, live)
    shutil.rmtree(previous, ignore_errors=True)
    logger.debug("checkpoint at step %d in %s", step, live)


def find_checkpoint(step_dir: Path) -> Path | None:
    """Return the newest complete checkpoint folder of a step, or None."""
    for name in (CHECKPOINT, f"{CHECKPOINT}.old"):
        candidate = step_dir / name
        if (candidate / STATE_FILE).is_file():
            return candidate
    return None


def load_trainer_state(checkpoint: Path, optimizer, scheduler) -> int:
    """Restore optimizer and scheduler from ``checkpoint`` and return its global step."""
    state = torch.load(checkpoint / STATE_FILE, map_location="cpu", weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    return int(state["step"])


def epoch_order(size: int, epoch: int, seed: int) -> list[int]:
    """Return the shuffled example order of ``epoch``; the same on every resume."""
    generator = torch.Generator().manual_seed(seed + epoch)
    return torch.randperm(size, generator=generator).tolist()


def truncate_losses(path: Path, step: int) -> None:
    """Drop loss rows after ``step``, written after the checkpoint a run resumes from."""
    if not path.is_file():
        return
    with path.open(encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    kept = [rows[0]] + [row for row in rows[1:] if int(row[0]) <= step]
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(kept)

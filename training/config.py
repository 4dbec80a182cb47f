"""Settings of a training run, stored as ``config.json`` in its output folder."""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from patentmatch.config import PROJECT_ROOT
from training.loop import LoopSettings
from training.modeling import ScratchArchitecture

logger = logging.getLogger(__name__)

SCRATCH = "scratch"
BUNDLED_CORPUS = PROJECT_ROOT / "ingest" / "data" / "kipris-sample.jsonl.gz"
BUNDLED_EVAL_DIR = PROJECT_ROOT / "benchmarks" / "data" / "eval"


@dataclass
class TrainConfig:
    """Every setting of the domain-adaptation recipe, with units and defaults.

    The defaults are the GPU recipe for ``klue/bert-base`` on a full corpus; the
    CPU run of the shipped model overrides sizes and step counts on the command line.
    """

    output_dir: Path = field(
        default=Path("runs/patent-sbert"),
        metadata={"help": "Folder of the run: one sub-folder per step, config.json, metrics.csv."})
    base: str = field(
        default="klue/bert-base",
        metadata={"help": "Starting model: a local folder, a hub id, or `scratch` for a new "
                  "BERT whose vocabulary is only the learned one."})
    corpus: Path = field(
        default=BUNDLED_CORPUS,
        metadata={"help": "Patent JSONL(.gz) with application_number, title, abstract."})
    corpus_limit: int | None = field(
        default=None, metadata={"help": "Use only the first N patents (default: all)."})
    eval_queries: list[Path] = field(
        default_factory=lambda: sorted(BUNDLED_EVAL_DIR.glob("*.jsonl")),
        metadata={"help": "Query JSONL files for evaluation (default: the bundled dev sets)."})
    eval_corpus_size: int | None = field(
        default=None,
        metadata={"help": "Evaluate against this many patents: every query and relevant "
                  "patent plus random others (default: the whole corpus)."})
    device: str = field(
        default="auto", metadata={"help": "`auto` (CUDA when present), `cpu` or `cuda`."})
    threads: int | None = field(
        default=None, metadata={"help": "torch CPU threads (default: torch's choice)."})
    seed: int = field(default=42, metadata={"help": "Seed of data order, masking and init."})
    max_seq_length: int = field(
        default=256, metadata={"help": "Tokens per text in every step; longer text is cut."})

    # Vocabulary
    vocab_size: int = field(
        default=16000,
        metadata={"help": "Size of the WordPiece vocabulary learned from the corpus."})
    max_new_tokens: int | None = field(
        default=None,
        metadata={"help": "Most tokens added to a base vocabulary (default: every learned "
                  "and external token that is new)."})
    external_vocab: Path | None = field(
        default=None,
        metadata={"help": "vocab.txt of another model (for example a patent-domain BERT) "
                  "whose new tokens are added before the learned ones."})
    vocab_min_frequency: int = field(
        default=2, metadata={"help": "Occurrences a WordPiece merge needs."})
    scratch_hidden_size: int = field(
        default=256, metadata={"help": "`scratch` only: hidden units."})
    scratch_layers: int = field(default=4, metadata={"help": "`scratch` only: layers."})
    scratch_heads: int = field(default=4, metadata={"help": "`scratch` only: attention heads."})
    scratch_intermediate_size: int = field(
        default=1024, metadata={"help": "`scratch` only: feed-forward units."})

    # MLM
    mlm_epochs: float = field(default=3.0, metadata={"help": "Passes over titles and abstracts."})
    mlm_max_steps: int | None = field(
        default=None, metadata={"help": "Cap on MLM optimiser steps (default: none)."})
    mlm_batch_size: int = field(default=64, metadata={"help": "Texts per MLM batch."})
    mlm_learning_rate: float = field(default=5e-5, metadata={"help": "Peak MLM learning rate."})
    mlm_probability: float = field(default=0.15, metadata={"help": "Share of tokens masked."})
    whole_word_mask: bool = field(
        default=True, metadata={"help": "Mask every piece of a word together."})

    # Sentence training
    sbert_epochs: float = field(default=1.0, metadata={"help": "Passes over the pairs."})
    sbert_max_steps: int | None = field(
        default=None, metadata={"help": "Cap on sentence-training steps (default: none)."})
    sbert_batch_size: int = field(
        default=64, metadata={"help": "Pairs per batch; each pair has batch_size - 1 "
                              "in-batch negatives."})
    sbert_learning_rate: float = field(
        default=2e-5, metadata={"help": "Peak sentence-training learning rate."})
    sbert_scale: float = field(
        default=20.0, metadata={"help": "Inverse temperature of the ranking loss."})
    sentence_pairs: bool = field(
        default=True, metadata={"help": "Add first-sentence/rest-of-abstract pairs to "
                                "title/abstract pairs."})

    checkpoint_every: int = field(
        default=500, metadata={"help": "Optimiser steps between checkpoints."})
    log_every: int = field(default=50, metadata={"help": "Steps between loss log lines."})
    eval_batch_size: int = field(default=64, metadata={"help": "Texts per encoder batch."})

    def __post_init__(self) -> None:
        self.output_dir = Path(self.output_dir)
        self.corpus = Path(self.corpus)
        self.eval_queries = [Path(path) for path in self.eval_queries]
        if self.external_vocab is not None:
            self.external_vocab = Path(self.external_vocab)
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, found {self.device!r}")
        if self.max_seq_length < 8:
            raise ValueError(f"max_seq_length must be at least 8, found {self.max_seq_length!r}")
        if not 0 < self.mlm_probability < 1:
            raise ValueError(f"mlm_probability must be in (0, 1), found {self.mlm_probability!r}")
        self.scratch_architecture()
        self.mlm_loop()
        self.sbert_loop()

    def scratch_architecture(self) -> ScratchArchitecture:
        """Return the architecture of a ``scratch`` model."""
        return ScratchArchitecture(
            hidden_size=self.scratch_hidden_size, num_layers=self.scratch_layers,
            num_heads=self.scratch_heads, intermediate_size=self.scratch_intermediate_size,
            # Positions beyond the training length would keep their random
            # initialisation, so the model accepts no longer input than it saw.
            max_position_embeddings=self.max_seq_length,
        )

    def mlm_loop(self) -> LoopSettings:
        """Return the optimisation settings of the MLM step."""
        return LoopSettings(
            epochs=self.mlm_epochs, batch_size=self.mlm_batch_size,
            learning_rate=self.mlm_learning_rate, max_steps=self.mlm_max_steps,
            checkpoint_every=self.checkpoint_every, log_every=self.log_every, seed=self.seed,
        )

    def sbert_loop(self) -> LoopSettings:
        """Return the optimisation settings of the sentence-training step."""
        return LoopSettings(
            epochs=self.sbert_epochs, batch_size=self.sbert_batch_size,
            learning_rate=self.sbert_learning_rate, max_steps=self.sbert_max_steps,
            checkpoint_every=self.checkpoint_every, log_every=self.log_every, seed=self.seed,
        )

    def to_json(self) -> dict[str, Any]:
        """Return the settings as JSON-ready values (paths as strings)."""
        values = dataclasses.asdict(self)
        for key, value in values.items():
            if isinstance(value, Path):
                values[key] = str(value)
            elif isinstance(value, list):
                values[key] = [str(item) for item in value]
        return values

    def save(self) -> Path:
        """Write ``config.json`` into the output folder and return its path."""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        path = self.output_dir / "config.json"
        path.write_text(json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n",
                        encoding="utf-8")
        return path

    @classmethod
    def load(cls, output_dir: Path) -> "TrainConfig":
        """Read the ``config.json`` of a run."""
        path = Path(output_dir) / "config.json"
        if not path.is_file():
            raise FileNotFoundError(f"no config.json in {str(output_dir)!r}; start the run "
                                    "with `patentmatch train vocab` or `train all`")
        values = json.loads(path.read_text(encoding="utf-8"))
        known = {item.name for item in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{path}: unknown settings {unknown!r}")
        return cls(**values)


def config_fields() -> list[dataclasses.Field]:
    """Return the fields of :class:`TrainConfig`, for building command-line options."""
    return list(dataclasses.fields(TrainConfig))

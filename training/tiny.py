"""A tiny Korean sentence encoder for tests: learned vocabulary, small BERT, brief training.

Built in seconds on a CPU from a few hundred patents, it exercises every code path
of the real models (WordPiece over Hangul, mean pooling, normalisation) without
claiming any retrieval quality.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from training.corpus import Patent, build_pairs, patent_texts
from training.loop import LoopSettings
from training.modeling import ScratchArchitecture, build_scratch_mlm, save_hf
from training.sbert import train_sentence_model
from training.vocab import build_scratch_tokenizer, learn_wordpiece

logger = logging.getLogger(__name__)

TINY_ARCHITECTURE = ScratchArchitecture(
    hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
    max_position_embeddings=512,
)


def build_tiny_encoder(
    patents: Sequence[Patent],
    out_dir: Path,
    *,
    vocab_size: int = 4000,
    steps: int = 30,
    batch_size: int = 16,
    max_seq_length: int = 64,
    seed: int = 0,
) -> Path:
    """Build a tiny sentence-transformers model under ``out_dir`` and return its folder.

    Args:
        patents: training text; a few hundred patents are enough.
        vocab_size: WordPiece vocabulary size, special tokens included.
        steps: contrastive training steps on title-abstract pairs.
        max_seq_length: token limit saved with the model (at most 512).
    """
    tokens = learn_wordpiece(patent_texts(patents), vocab_size, min_frequency=2)
    tokenizer = build_scratch_tokenizer(tokens, out_dir / "tokenizer")
    mlm = build_scratch_mlm(tokenizer, TINY_ARCHITECTURE, seed)
    save_hf(mlm, tokenizer, out_dir / "initial")
    pairs = build_pairs(patents, sentence_pairs=False)
    settings = LoopSettings(epochs=100.0, batch_size=batch_size, learning_rate=1e-3,
                            warmup_ratio=0.0, max_steps=steps, seed=seed, log_every=10)
    train_sentence_model(out_dir / "initial", pairs, settings, out_dir / "sbert",
                         max_seq_length=max_seq_length, show_progress=False)
    return out_dir / "sbert" / "model"

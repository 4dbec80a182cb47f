"""Build, load and convert the models the training steps pass between them.

Steps hand over Hugging Face folders (``config.json``, ``model.safetensors`` and
the tokenizer). The vocabulary and MLM steps save a masked-language model; the
sentence step wraps the same weights in a sentence-transformers model with mean
pooling and L2 normalisation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScratchArchitecture:
    """Size of a BERT trained from scratch. Defaults: about 3.2 M parameters without embeddings."""

    hidden_size: int = 256
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 1024
    max_position_embeddings: int = 512

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size={self.hidden_size} must be a multiple of "
                f"num_heads={self.num_heads}"
            )
        for name in ("hidden_size", "num_layers", "num_heads", "intermediate_size",
                     "max_position_embeddings"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, found {getattr(self, name)!r}")


def build_scratch_mlm(tokenizer, architecture: ScratchArchitecture, seed: int):
    """Return a randomly initialised ``BertForMaskedLM`` for ``tokenizer``'s vocabulary."""
    from transformers import BertConfig, BertForMaskedLM

    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=architecture.hidden_size,
        num_hidden_layers=architecture.num_layers,
        num_attention_heads=architecture.num_heads,
        intermediate_size=architecture.intermediate_size,
        max_position_embeddings=architecture.max_position_embeddings,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    return BertForMaskedLM(config)


def load_mlm(path: str | Path):
    """Load a masked-language model; a missing MLM head (a sentence model) is initialised."""
    from transformers import AutoModelForMaskedLM

    return AutoModelForMaskedLM.from_pretrained(str(path))


def save_hf(model, tokenizer, out_dir: Path) -> None:
    """Save a Hugging Face model as safetensors together with its tokenizer."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)


def sentence_transformer_from_hf(path: str | Path, max_seq_length: int, device: str = "cpu"):
    """Wrap a Hugging Face encoder folder as a mean-pooling, L2-normalising sentence model.

    A folder that already is a sentence-transformers model (``modules.json``) is
    loaded as it is, with ``max_seq_length`` applied.
    """
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import (
        Normalize,
        Pooling,
        Transformer,
    )

    path = Path(path) if Path(str(path)).exists() else path
    if isinstance(path, Path) and (path / "modules.json").is_file():
        model = SentenceTransformer(str(path), device=device)
        model.max_seq_length = max_seq_length
        return model
    transformer = Transformer(str(path), max_seq_length=max_seq_length)
    pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    return SentenceTransformer(modules=[transformer, pooling, Normalize()], device=device)


def encoder_of(mlm_model):
    """Return the encoder body (``BertModel`` and alike) of a masked-language model."""
    return getattr(mlm_model, mlm_model.base_model_prefix)

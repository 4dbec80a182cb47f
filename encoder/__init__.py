"""Sentence encoder: Korean patent text in, L2-normalised float32 vectors out."""

from encoder.model import (
    DEFAULT_MODEL_NAME,
    EncoderError,
    PatentEncoder,
    clean_text,
    default_model_path,
    fingerprint_files,
    load_encoder,
)

__all__ = [
    "DEFAULT_MODEL_NAME",
    "EncoderError",
    "PatentEncoder",
    "clean_text",
    "default_model_path",
    "fingerprint_files",
    "load_encoder",
]

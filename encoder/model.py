"""Load a sentence encoder and turn patent text into L2-normalised float32 vectors.

Text handling, the same for documents and queries:

- Text is NFC-normalised and runs of whitespace become one space, so Hangul typed
  as decomposed jamo (macOS file names, some exports) encodes like composed text.
- Empty or whitespace-only text has no content to encode. ``encode`` returns an
  all-zero row for it (cosine 0 to every vector, so it never ranks above a real
  match) and logs how many such rows a call produced; ``encode_query`` raises
  ``ValueError`` because an empty query is a caller error.
- Text longer than ``max_seq_length`` tokens is truncated: only the first
  ``max_seq_length`` tokens (special tokens included) reach the model.
- Mixed Korean and English text needs no special path: the tokenizer splits both
  scripts into word pieces of one vocabulary.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from patentmatch.config import Settings, load_settings

logger = logging.getLogger(__name__)

MODELS_DIR = Path(__file__).resolve().parent / "models"
DEFAULT_MODEL_NAME = "patentmatch-ko-small"
DEFAULT_QUERY_CACHE_SIZE = 1024

# Files whose bytes decide the vectors a model produces: configuration,
# tokenizer and weights. READMEs and training logs are left out on purpose, so
# editing a model card does not force the vector index to be rebuilt.
_FINGERPRINT_SUFFIXES = (".json", ".txt", ".safetensors", ".bin", ".model", ".pt")
_WHITESPACE = re.compile(r"\s+")
# A hub id is ``name`` or ``owner/name``; anything else is a local path.
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")


class EncoderError(RuntimeError):
    """The encoder cannot be loaded or used; the message names the cause and the fix."""


def default_model_path() -> Path:
    """Return the folder of the model shipped with the project (``encoder/models/<name>``)."""
    return MODELS_DIR / DEFAULT_MODEL_NAME


def clean_text(text: str) -> str:
    """Return ``text`` NFC-normalised, with whitespace runs collapsed and ends stripped."""
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()


def resolve_device(device: str) -> str:
    """Map the ``device`` setting (``auto``, ``cpu``, ``cuda``) to a torch device name."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise EncoderError(
            "device='cuda' but torch sees no CUDA device; install the CUDA build of "
            "torch or set PATENTMATCH_DEVICE=auto"
        )
    if device not in ("cpu", "cuda"):
        raise EncoderError(f"device must be auto, cpu or cuda, found {device!r}")
    return device


def fingerprint_files(folder: Path) -> str:
    """Return the SHA-256 hex digest over the configuration, tokenizer and weight files.

    Files are hashed in sorted order of their path relative to ``folder``, and each
    path is hashed before its bytes, so renaming or moving a file changes the digest.
    """
    files = sorted(
        path for path in folder.rglob("*")
        if path.is_file() and path.suffix in _FINGERPRINT_SUFFIXES
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )
    if not files:
        raise EncoderError(f"no configuration or weight files under {str(folder)!r}")
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(folder).as_posix().encode("utf-8") + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _is_hub_id(model: str) -> bool:
    return _HUB_ID.fullmatch(model) is not None


def _hub_snapshot(model_id: str) -> Path | None:
    """Return the local cache folder of a hub model, or None when it is not cached."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model_id, local_files_only=True))
    except Exception:  # any cache miss or hub error means there is no local snapshot
        return None


class PatentEncoder:
    """A sentence encoder returning L2-normalised float32 vectors, with a query cache.

    Build it with :func:`load_encoder`. ``encode`` and ``encode_query`` may be called
    from several threads; the query cache is guarded by a lock.
    """

    def __init__(
        self,
        model,
        *,
        name: str,
        fingerprint: str,
        device: str,
        batch_size: int,
        query_cache_size: int = DEFAULT_QUERY_CACHE_SIZE,
    ) -> None:
        self._model = model
        self._name = name
        self._fingerprint = fingerprint
        self._device = device
        self._batch_size = batch_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = query_cache_size
        self._cache_lock = threading.Lock()
        self.cache_hits = 0
        self.cache_misses = 0

    @property
    def dimension(self) -> int:
        """Length of every vector."""
        return int(self._model.get_embedding_dimension())

    @property
    def name(self) -> str:
        """The model's folder name or hub id."""
        return self._name

    @property
    def fingerprint(self) -> str:
        """SHA-256 hex digest of the model's configuration, tokenizer and weight files."""
        return self._fingerprint

    @property
    def device(self) -> str:
        """Torch device the model runs on (``cpu`` or ``cuda``)."""
        return self._device

    @property
    def max_seq_length(self) -> int:
        """Maximum tokens per text passed to the model; longer text is truncated."""
        return int(self._model.max_seq_length)

    @property
    def sentence_transformer(self):
        """The underlying ``SentenceTransformer``, for training and inspection."""
        return self._model

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int | None = None,
        show_progress: bool | None = None,
    ) -> np.ndarray:
        """Encode texts into an ``(n, dimension)`` float32 array of unit rows.

        Args:
            texts: a sequence of strings (a bare string is rejected: use
                ``encode_query`` for one text). Empty or whitespace-only texts get
                all-zero rows.
            batch_size: texts per forward pass (default ``Settings.encode_batch_size``).
            show_progress: draw a progress bar; default when the logger is at INFO or
                DEBUG.
        """
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of strings, not one str; "
                            "use encode_query(text) or encode([text])")
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{index}] must be str, found {type(text).__name__}")
        batch_size = self._batch_size if batch_size is None else batch_size
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, found {batch_size!r}")
        if show_progress is None:
            show_progress = logger.getEffectiveLevel() <= logging.INFO

        cleaned = [clean_text(text) for text in texts]
        present = [index for index, text in enumerate(cleaned) if text]
        vectors = np.zeros((len(cleaned), self.dimension), dtype=np.float32)
        if len(present) < len(cleaned):
            logger.info("%d of %d texts are empty; their vectors are all zero",
                        len(cleaned) - len(present), len(cleaned))
        if present:
            encoded = self._model.encode(
                [cleaned[index] for index in present],
                batch_size=batch_size,
                show_progress_bar=show_progress and len(present) > batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
            )
            vectors[present] = _unit_rows(np.asarray(encoded, dtype=np.float32))
        return vectors

    def encode_query(self, text: str) -> np.ndarray:
        """Encode one query into a ``(dimension,)`` float32 unit vector, cached by text.

        Raises:
            ValueError: the text is empty or whitespace only.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be str, found {type(text).__name__}")
        key = clean_text(text)
        if not key:
            raise ValueError("query text is empty or whitespace only; pass text to encode")
        with self._cache_lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                self.cache_hits += 1
                return cached.copy()
            self.cache_misses += 1
        vector = self.encode([key], show_progress=False)[0]
        with self._cache_lock:
            self._cache[key] = vector
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return vector.copy()

    def clear_cache(self) -> None:
        """Drop every cached query vector and reset the hit and miss counters."""
        with self._cache_lock:
            self._cache.clear()
            self.cache_hits = 0
            self.cache_misses = 0

    def __repr__(self) -> str:
        return (f"PatentEncoder(name={self._name!r}, dimension={self.dimension}, "
                f"device={self._device!r}, max_seq_length={self.max_seq_length})")


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    # fp16 inference can leave norms a little off 1; renormalise in float32.
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def load_encoder(
    model: str | Path | None = None,
    settings: Settings | None = None,
    *,
    device: str | None = None,
    max_seq_length: int | None = None,
    query_cache_size: int = DEFAULT_QUERY_CACHE_SIZE,
) -> PatentEncoder:
    """Load a sentence-transformers model from a local folder or a hub id.

    Args:
        model: a local folder or a hub id such as ``klue/bert-base`` (hub ids need
            the network or a local hub cache). Default: ``settings.model``, and when
            that is empty the shipped model, :func:`default_model_path`.
        settings: defaults for device, batch size and sequence length (default:
            :func:`patentmatch.config.load_settings`).
        device: ``auto``, ``cpu`` or ``cuda``; overrides ``settings.device``. On CUDA
            the weights are cast to float16.
        max_seq_length: tokens per text; overrides ``settings.max_seq_length``. An
            explicit value above the model's position limit raises ``ValueError``;
            the settings value is lowered to that limit instead.
        query_cache_size: query vectors kept by ``encode_query`` (default 1024).
    """
    settings = settings or load_settings()
    source = str(model) if model not in (None, "") else settings.model
    if not source:
        source = str(default_model_path())
    device = resolve_device(device or settings.device)
    explicit_length = max_seq_length is not None
    max_seq_length = max_seq_length if explicit_length else settings.max_seq_length
    if max_seq_length <= 0:
        raise ValueError(f"max_seq_length must be positive, found {max_seq_length!r}")
    if query_cache_size <= 0:
        raise ValueError(f"query_cache_size must be positive, found {query_cache_size!r}")

    folder = Path(source).expanduser()
    if folder.is_dir():
        name = folder.name
    elif not _is_hub_id(source) or folder.exists():
        hint = (" (the shipped model is missing: reinstall the project or train one "
                "with `patentmatch train all`)" if folder == default_model_path() else "")
        raise EncoderError(f"model folder not found: {source!r}{hint}")
    else:
        folder = None
        name = source

    from sentence_transformers import SentenceTransformer

    logger.info("loading sentence encoder %s on %s", source, device)
    try:
        st_model = SentenceTransformer(str(folder or source), device=device)
    except OSError as exc:
        raise EncoderError(
            f"could not load model {source!r}: {exc}. A hub id needs network access "
            "or a local hub cache; otherwise set PATENTMATCH_MODEL to a local folder"
        ) from exc
    config = getattr(getattr(st_model[0], "auto_model", None), "config", None)
    position_limit = getattr(config, "max_position_embeddings", None)
    if position_limit is not None and max_seq_length > position_limit:
        if explicit_length:
            raise ValueError(
                f"max_seq_length={max_seq_length} exceeds the {position_limit} positions "
                f"of model {name!r}; pass {position_limit} or less"
            )
        logger.info("max_seq_length %d from the settings exceeds the %d positions of %s; "
                    "using %d", max_seq_length, position_limit, name, position_limit)
        max_seq_length = position_limit
    st_model.max_seq_length = max_seq_length
    if device == "cuda":
        st_model.half()
    st_model.eval()

    if folder is None:
        folder = _hub_snapshot(source)
    if folder is None:
        raise EncoderError(f"no local files for model {source!r}; cannot fingerprint it")
    return PatentEncoder(
        st_model,
        name=name,
        fingerprint=fingerprint_files(folder),
        device=device,
        batch_size=settings.encode_batch_size,
        query_cache_size=query_cache_size,
    )

"""Learn WordPiece sub-words from patent text and add them to a model's vocabulary.

Extension keeps every existing token id, appends the new tokens after them,
resizes the embedding matrix and initialises each new row as the mean of the
embeddings of the pieces the *old* tokenizer splits the token into. A model that
starts this way reads ``반도체`` roughly as it read its old pieces, instead of
from a random vector.

New tokens are learned in the base tokenizer's own normalised form (its
normaliser and pre-tokeniser run before WordPiece training), so they match the
strings the tokenizer produces at run time. For an uncased English BERT this is
NFD form, where Hangul syllables are split into jamo.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
CONTINUATION_PREFIX = "##"


class VocabularyError(ValueError):
    """The tokenizer or vocabulary cannot be extended as requested."""


def _wordpiece_backend(tokenizer):
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or type(backend.model).__name__ != "WordPiece":
        raise VocabularyError(
            f"vocabulary extension needs a WordPiece tokenizer (BERT family); "
            f"{type(tokenizer).__name__} uses "
            f"{type(backend.model).__name__ if backend is not None else 'no fast backend'}"
        )
    return backend


def hangul_alphabet() -> list[str]:
    """Return the 2,350 Hangul syllables of KS X 1001, the set in everyday Korean text.

    BERT's WordPiece maps a whole word to ``[UNK]`` when one character is missing
    from the vocabulary, so a syllable absent from the training text would blank
    out every word that contains it.
    """
    syllables = []
    for code in range(0xAC00, 0xD7A4):
        char = chr(code)
        # Python's EUC-KR codec writes the other syllables as 8-byte make-up
        # sequences; the KS X 1001 repertoire is the 2-byte ones.
        try:
            if len(char.encode("euc-kr")) == 2:
                syllables.append(char)
        except UnicodeEncodeError:
            continue
    return syllables


def learn_wordpiece(
    texts: Iterable[str],
    vocab_size: int,
    *,
    base_tokenizer=None,
    min_frequency: int = 2,
    limit_alphabet: int = 4000,
    lowercase: bool = True,
    hangul_syllables: bool = True,
    show_progress: bool = False,
) -> list[str]:
    """Learn a WordPiece vocabulary from ``texts`` with the ``tokenizers`` trainer.

    Args:
        vocab_size: size of the learned vocabulary, special tokens included.
        base_tokenizer: a Hugging Face WordPiece tokenizer whose normaliser and
            pre-tokeniser are used; default: BERT's, lower-casing Latin letters and
            keeping Hangul syllables composed.
        min_frequency: a merge needs this many occurrences (default 2).
        limit_alphabet: most distinct characters kept as single-character tokens,
            the Hangul syllables below included (default 4000).
        lowercase: lower-case Latin letters when ``base_tokenizer`` is None.
        hangul_syllables: put every KS X 1001 Hangul syllable (:func:`hangul_alphabet`)
            in the alphabet, after the base normaliser (default True).

    Returns:
        The learned tokens in trainer order (special tokens first).
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    if vocab_size <= len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size must exceed {len(SPECIAL_TOKENS)}, found {vocab_size!r}")
    if base_tokenizer is not None:
        backend = Tokenizer.from_str(_wordpiece_backend(base_tokenizer).to_str())
        unk = base_tokenizer.unk_token or "[UNK]"
        backend.model = models.WordPiece(unk_token=unk,
                                         continuing_subword_prefix=CONTINUATION_PREFIX)
        special = [token for token in base_tokenizer.all_special_tokens]
    else:
        backend = Tokenizer(models.WordPiece(unk_token="[UNK]",
                                             continuing_subword_prefix=CONTINUATION_PREFIX))
        backend.normalizer = normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=True, strip_accents=False,
            lowercase=lowercase,
        )
        backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        special = list(SPECIAL_TOKENS)
    alphabet: list[str] = []
    if hangul_syllables:
        normalizer = backend.normalizer
        chars = {char for syllable in hangul_alphabet()
                 for char in (normalizer.normalize_str(syllable) if normalizer else syllable)}
        alphabet = sorted(chars)
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        limit_alphabet=limit_alphabet,
        special_tokens=special,
        initial_alphabet=alphabet,
        continuing_subword_prefix=CONTINUATION_PREFIX,
        show_progress=show_progress,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    vocab = backend.get_vocab()
    return sorted(vocab, key=vocab.__getitem__)


def read_vocab_file(path: str | Path) -> list[str]:
    """Read a ``vocab.txt`` (one token per line, blank lines ignored)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"vocabulary file not found: {str(path)!r}")
    with path.open(encoding="utf-8") as handle:
        return [line.rstrip("\n") for line in handle if line.strip()]


def merge_vocab(
    base_vocab: dict[str, int],
    *sources: Sequence[str],
    max_new_tokens: int | None = None,
) -> list[str]:
    """Return the tokens of ``sources`` missing from ``base_vocab``, in source order.

    Duplicates and ``[...]`` special or unused tokens are left out. ``max_new_tokens``
    caps the result (sources earlier in the list win).
    """
    seen = set(base_vocab)
    new_tokens: list[str] = []
    for source in sources:
        for token in source:
            if token in seen or (token.startswith("[") and token.endswith("]")):
                continue
            seen.add(token)
            new_tokens.append(token)
    if max_new_tokens is not None:
        new_tokens = new_tokens[:max_new_tokens]
    return new_tokens


def wordpiece_split(
    text: str, vocab: dict[str, int], *, continuation: bool = False,
    unk_token: str = "[UNK]", skip_unknown: bool = False,
) -> list[str]:
    """Split one word into pieces by greedy longest-match-first, as BERT's WordPiece does.

    Args:
        text: the word's surface (without the ``##`` prefix).
        continuation: the word continues a previous piece, so its first piece must
            also carry the ``##`` prefix.
        skip_unknown: drop a character that no token matches and go on with the
            next one, instead of returning ``[unk_token]`` for the whole word as BERT
            does.

    Returns:
        The pieces; ``[unk_token]`` when some part has no match and ``skip_unknown``
        is False, or when nothing matches at all.
    """
    pieces: list[str] = []
    start = 0
    while start < len(text):
        end = len(text)
        match = None
        while end > start:
            piece = text[start:end]
            if start > 0 or continuation:
                piece = CONTINUATION_PREFIX + piece
            if piece in vocab:
                match = piece
                break
            end -= 1
        if match is None:
            if not skip_unknown:
                return [unk_token]
            start += 1
            continue
        pieces.append(match)
        start = end
    return pieces or [unk_token]


def extend_tokenizer(base_tokenizer, new_tokens: Sequence[str], out_dir: Path):
    """Save ``base_tokenizer`` with ``new_tokens`` appended to its WordPiece vocabulary.

    Existing ids are unchanged; new token ``i`` gets id ``len(base_vocab) + i``.

    Returns:
        The extended tokenizer, loaded back from ``out_dir``.
    """
    from transformers import AutoTokenizer

    backend = _wordpiece_backend(base_tokenizer)
    base_vocab = backend.get_vocab(with_added_tokens=False)
    if sorted(base_vocab.values()) != list(range(len(base_vocab))):
        raise VocabularyError("the base vocabulary ids are not contiguous from 0")
    clash = [token for token in new_tokens if token in base_vocab]
    if clash:
        raise VocabularyError(f"{len(clash)} new tokens already exist, e.g. {clash[:3]!r}")

    out_dir.mkdir(parents=True, exist_ok=True)
    base_tokenizer.save_pretrained(out_dir)
    merged = dict(base_vocab)
    for token in new_tokens:
        merged[token] = len(merged)

    tokenizer_json = out_dir / "tokenizer.json"
    state = json.loads(backend.to_str())
    state["model"]["vocab"] = merged
    tokenizer_json.write_text(json.dumps(state, ensure_ascii=False), encoding="utf-8")
    ordered = sorted(merged, key=merged.__getitem__)
    (out_dir / "vocab.txt").write_text("\n".join(ordered) + "\n", encoding="utf-8")

    extended = AutoTokenizer.from_pretrained(out_dir)
    if len(extended) != len(merged) + _added_token_count(base_tokenizer, base_vocab):
        raise VocabularyError(
            f"the saved tokenizer has {len(extended)} tokens, expected {len(merged)}; "
            "the tokenizer class may ignore tokenizer.json"
        )
    return extended


def _added_token_count(tokenizer, base_vocab: dict[str, int]) -> int:
    return sum(1 for token in tokenizer.get_vocab() if token not in base_vocab)


def build_scratch_tokenizer(tokens: Sequence[str], out_dir: Path, *, lowercase: bool = True):
    """Build and save a BERT WordPiece tokenizer whose vocabulary is exactly ``tokens``."""
    from transformers import BertTokenizer

    missing = [token for token in SPECIAL_TOKENS if token not in tokens]
    if missing:
        raise VocabularyError(f"the vocabulary lacks the special tokens {missing!r}")
    vocab = {token: index for index, token in enumerate(tokens)}
    tokenizer = BertTokenizer(vocab=vocab, do_lower_case=lowercase, strip_accents=False,
                              tokenize_chinese_chars=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(out_dir)
    return tokenizer


@torch.no_grad()
def init_new_embeddings(
    embeddings: torch.nn.Embedding,
    old_vocab: dict[str, int],
    new_tokens: Sequence[str],
    first_new_id: int,
    unk_token: str = "[UNK]",
) -> dict[str, int]:
    """Set each new token's row to the mean of its pieces' rows under the old vocabulary.

    A token ``##xyz`` is split as a continuation; any other token as a word start.
    Characters the old vocabulary lacks are skipped, so ``[UNK]`` never dilutes
    the mean; a token with no known character at all gets the ``[UNK]`` row.

    Args:
        embeddings: the resized input embeddings; rows below ``first_new_id`` are old.
        old_vocab: token -> id of the tokenizer before extension.
        new_tokens: the new tokens, in id order from ``first_new_id``.

    Returns:
        Counts: ``{"from_pieces": n, "unknown": m}``, ``unknown`` being the tokens
        that got the ``[UNK]`` row.
    """
    weight = embeddings.weight
    if weight.shape[0] < first_new_id + len(new_tokens):
        raise VocabularyError(
            f"the embedding matrix has {weight.shape[0]} rows, fewer than "
            f"{first_new_id + len(new_tokens)}; resize it first"
        )
    unk_id = old_vocab[unk_token]
    counts = {"from_pieces": 0, "unknown": 0}
    for offset, token in enumerate(new_tokens):
        continuation = token.startswith(CONTINUATION_PREFIX)
        surface = token[len(CONTINUATION_PREFIX):] if continuation else token
        pieces = wordpiece_split(surface, old_vocab, continuation=continuation,
                                 unk_token=unk_token, skip_unknown=True)
        ids = [old_vocab[piece] for piece in pieces]
        if ids == [unk_id]:
            counts["unknown"] += 1
        else:
            counts["from_pieces"] += 1
        weight[first_new_id + offset] = weight[ids].mean(dim=0)
    return counts

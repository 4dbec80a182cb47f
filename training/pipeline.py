"""The domain-adaptation recipe as resumable steps writing into one output folder.

Layout of ``output_dir``::

    config.json           settings of the run
    1-vocab/model/        base model with the extended (or new) vocabulary, MLM head
    1-vocab/learned_vocab.txt
    2-mlm/model/          after continued MLM training; losses.csv, checkpoint/
    3-sbert/model/        the sentence encoder; losses.csv, checkpoint/
    <step>/metrics.json   training summary and evaluation before and after the step
    eval/<stage>.json     dense retrieval metrics of each stage's model
    metrics.csv           every evaluation, one row per stage, query set and method

A step whose ``metrics.json`` exists is done and is skipped; an interrupted step
resumes from its last checkpoint.
"""

from __future__ import annotations

import csv
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from encoder.model import PatentEncoder, fingerprint_files, resolve_device
from training.config import SCRATCH, TrainConfig
from training.corpus import Patent, build_pairs, patent_texts, read_patents
from training.evaluate import evaluate_encoder, prepare_evaluation
from training.mlm import train_mlm
from training.modeling import (
    build_scratch_mlm,
    load_mlm,
    save_hf,
    sentence_transformer_from_hf,
)
from training.sbert import train_sentence_model
from training.vocab import (
    build_scratch_tokenizer,
    extend_tokenizer,
    init_new_embeddings,
    learn_wordpiece,
    merge_vocab,
    read_vocab_file,
)

logger = logging.getLogger(__name__)

STEPS = ("vocab", "mlm", "sbert")
STEP_DIRS = {"vocab": "1-vocab", "mlm": "2-mlm", "sbert": "3-sbert"}
METRICS_FILE = "metrics.json"


class PipelineError(RuntimeError):
    """A step cannot run, usually because the step it builds on is not done."""


class Pipeline:
    """Runs the steps of one :class:`TrainConfig`; the corpus is read once, lazily."""

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.device = resolve_device(config.device)
        self._patents: list[Patent] | None = None
        self._evaluation = None
        if config.threads:
            torch.set_num_threads(config.threads)

    # Paths and state

    def step_dir(self, step: str) -> Path:
        return self.config.output_dir / STEP_DIRS[step]

    def model_dir(self, step: str) -> Path:
        return self.step_dir(step) / "model"

    def is_done(self, step: str) -> bool:
        return (self.step_dir(step) / METRICS_FILE).is_file()

    @property
    def patents(self) -> list[Patent]:
        if self._patents is None:
            self._patents = read_patents(self.config.corpus, self.config.corpus_limit)
        return self._patents

    def _require(self, step: str) -> Path:
        if not self.is_done(step):
            raise PipelineError(
                f"step {step!r} is not done in {self.config.output_dir}; run "
                f"`patentmatch train {step} --output-dir {self.config.output_dir}` first"
            )
        return self.model_dir(step)

    def _write_metrics(self, step: str, values: dict[str, Any]) -> dict[str, Any]:
        path = self.step_dir(step) / METRICS_FILE
        path.write_text(json.dumps(values, indent=2, ensure_ascii=False) + "\n",
                        encoding="utf-8")
        logger.info("step %s done: %s", step, path)
        return values

    def _skip(self, step: str) -> dict[str, Any]:
        logger.info("step %s is already done in %s; skipping", step, self.step_dir(step))
        return json.loads((self.step_dir(step) / METRICS_FILE).read_text(encoding="utf-8"))

    # Evaluation

    def evaluate(self, stage: str, model_path: str | Path) -> dict[str, Any]:
        """Evaluate one stage's model, reusing ``eval/<stage>.json`` when it exists."""
        path = self.config.output_dir / "eval" / f"{stage}.json"
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))
        if self._evaluation is None:
            self._evaluation = prepare_evaluation(
                self.patents, self.config.eval_queries, self.config.eval_corpus_size,
                self.config.seed)
        corpus, query_sets = self._evaluation
        model = sentence_transformer_from_hf(model_path, self.config.max_seq_length,
                                             device=self.device)
        model.eval()
        local = Path(str(model_path))
        encoder = PatentEncoder(
            model, name=stage, device=self.device, batch_size=self.config.eval_batch_size,
            fingerprint=fingerprint_files(local) if local.is_dir() else "",
        )
        with torch.inference_mode():
            results = evaluate_encoder(encoder, corpus, query_sets,
                                       batch_size=self.config.eval_batch_size)
        record = {"stage": stage, "model": str(model_path), "corpus_size": len(corpus),
                  "results": results}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n",
                        encoding="utf-8")
        self._write_metrics_csv()
        for label, methods in results.items():
            for method, metrics in methods.items():
                logger.info("%s %s %s: nDCG@10 %.3f R@10 %.3f R@100 %.3f MRR %.3f", stage,
                            label, method, metrics["ndcg@10"], metrics["recall@10"],
                            metrics["recall@100"], metrics["mrr"])
        return record

    def _write_metrics_csv(self) -> None:
        rows = []
        for path in sorted((self.config.output_dir / "eval").glob("*.json")):
            record = json.loads(path.read_text(encoding="utf-8"))
            for label, methods in record["results"].items():
                for method, metrics in methods.items():
                    rows.append({"stage": record["stage"], "corpus_size": record["corpus_size"],
                                 "query_set": label, "method": method, **metrics})
        if not rows:
            return
        with (self.config.output_dir / "metrics.csv").open("w", encoding="utf-8",
                                                           newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)

    def evaluate_base(self) -> dict[str, Any] | None:
        """Evaluate the starting model; a ``scratch`` start has none and returns None."""
        if self.config.base == SCRATCH:
            return None
        return self.evaluate("0-base", self.config.base)

    # Steps

    def run_vocab(self) -> dict[str, Any]:
        """Learn sub-words and build the starting MLM model with the new vocabulary."""
        if self.is_done("vocab"):
            return self._skip("vocab")
        started = time.monotonic()
        step_dir = self.step_dir("vocab")
        shutil.rmtree(step_dir, ignore_errors=True)
        step_dir.mkdir(parents=True)
        before = self.evaluate_base()
        summary = (self._build_scratch(step_dir) if self.config.base == SCRATCH
                   else self._extend_base(step_dir))
        summary["seconds"] = round(time.monotonic() - started, 1)
        after = self.evaluate("1-vocab", self.model_dir("vocab"))
        return self._write_metrics("vocab", {"step": "vocab", "train": summary,
                                             "eval_before": before, "eval_after": after})

    def _learn(self, base_tokenizer=None) -> list[str]:
        tokens = learn_wordpiece(patent_texts(self.patents), self.config.vocab_size,
                                 base_tokenizer=base_tokenizer,
                                 min_frequency=self.config.vocab_min_frequency)
        path = self.step_dir("vocab") / "learned_vocab.txt"
        path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
        logger.info("learned %d WordPiece tokens; written to %s", len(tokens), path)
        return tokens

    def _build_scratch(self, step_dir: Path) -> dict[str, Any]:
        tokens = self._learn()
        tokenizer = build_scratch_tokenizer(tokens, step_dir / "tokenizer")
        model = build_scratch_mlm(tokenizer, self.config.scratch_architecture(),
                                  self.config.seed)
        save_hf(model, tokenizer, self.model_dir("vocab"))
        shutil.rmtree(step_dir / "tokenizer", ignore_errors=True)
        return {"base": SCRATCH, "learned_tokens": len(tokens), "vocab_size": len(tokenizer),
                "parameters": sum(p.numel() for p in model.parameters()),
                **_tokenizer_stats(tokenizer, self.patents)}

    def _extend_base(self, step_dir: Path) -> dict[str, Any]:
        from transformers import AutoTokenizer

        base_tokenizer = AutoTokenizer.from_pretrained(self.config.base)
        old_vocab = base_tokenizer.backend_tokenizer.get_vocab(with_added_tokens=False)
        stats_before = _tokenizer_stats(base_tokenizer, self.patents)
        learned = self._learn(base_tokenizer)
        external: list[str] = []
        if self.config.external_vocab is not None:
            normalizer = base_tokenizer.backend_tokenizer.normalizer
            external = [_normalise_token(token, normalizer)
                        for token in read_vocab_file(self.config.external_vocab)]
        new_tokens = merge_vocab(old_vocab, external, learned,
                                 max_new_tokens=self.config.max_new_tokens)
        tokenizer = extend_tokenizer(base_tokenizer, new_tokens, step_dir / "tokenizer")
        model = load_mlm(self.config.base)
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        counts = init_new_embeddings(model.get_input_embeddings(), old_vocab, new_tokens,
                                     first_new_id=len(old_vocab),
                                     unk_token=base_tokenizer.unk_token)
        save_hf(model, tokenizer, self.model_dir("vocab"))
        shutil.rmtree(step_dir / "tokenizer", ignore_errors=True)
        logger.info("added %d tokens to the %d of %s (%d initialised from pieces, "
                    "%d from [UNK])", len(new_tokens), len(old_vocab), self.config.base,
                    counts["from_pieces"], counts["unknown"])
        stats_after = _tokenizer_stats(tokenizer, self.patents)
        return {"base": self.config.base, "base_vocab_size": len(old_vocab),
                "learned_tokens": len(learned), "external_tokens": len(external),
                "new_tokens": len(new_tokens), "vocab_size": len(tokenizer),
                "initialised": counts,
                "parameters": sum(p.numel() for p in model.parameters()),
                "before": stats_before, "after": stats_after}

    def run_mlm(self) -> dict[str, Any]:
        """Continue masked-language-model training on titles and abstracts."""
        if self.is_done("mlm"):
            return self._skip("mlm")
        start = self._require("vocab")
        before = self.evaluate("1-vocab", start)
        _, _, summary = train_mlm(
            start, list(patent_texts(self.patents)), self.config.mlm_loop(),
            self.step_dir("mlm"), max_seq_length=self.config.max_seq_length,
            mlm_probability=self.config.mlm_probability,
            whole_word_mask=self.config.whole_word_mask, device=self.device,
        )
        after = self.evaluate("2-mlm", self.model_dir("mlm"))
        return self._write_metrics("mlm", {"step": "mlm", "train": summary,
                                           "eval_before": before, "eval_after": after})

    def run_sbert(self) -> dict[str, Any]:
        """Train the sentence encoder with in-batch negatives on pairs from the corpus."""
        if self.is_done("sbert"):
            return self._skip("sbert")
        start_step = "mlm" if self.is_done("mlm") else "vocab"
        start = self._require(start_step)
        if start_step == "vocab":
            logger.warning("step mlm is not done; sentence training starts from the "
                           "vocabulary step's model")
        stage = "2-mlm" if start_step == "mlm" else "1-vocab"
        before = self.evaluate(stage, start)
        pairs = build_pairs(self.patents, sentence_pairs=self.config.sentence_pairs)
        _, summary = train_sentence_model(
            start, pairs, self.config.sbert_loop(), self.step_dir("sbert"),
            max_seq_length=self.config.max_seq_length, scale=self.config.sbert_scale,
            device=self.device,
        )
        summary["started_from"] = start_step
        after = self.evaluate("3-sbert", self.model_dir("sbert"))
        return self._write_metrics("sbert", {"step": "sbert", "train": summary,
                                             "eval_before": before, "eval_after": after})

    def run_evaluate(self, model: str | Path | None = None) -> list[dict[str, Any]]:
        """Evaluate ``model``, or the base and every finished step's model."""
        if model is not None:
            return [self.evaluate(Path(str(model)).name, model)]
        records = []
        base = self.evaluate_base()
        if base is not None:
            records.append(base)
        for index, step in enumerate(STEPS, start=1):
            if self.is_done(step):
                records.append(self.evaluate(f"{index}-{step}", self.model_dir(step)))
        return records

    def run_all(self) -> dict[str, Any]:
        """Run every step in order, skipping the finished ones."""
        started = time.monotonic()
        results = {"vocab": self.run_vocab(), "mlm": self.run_mlm(), "sbert": self.run_sbert()}
        logger.info("pipeline finished in %.0f s; the sentence encoder is in %s",
                    time.monotonic() - started, self.model_dir("sbert"))
        return results


def _normalise_token(token: str, normalizer) -> str:
    if normalizer is None:
        return token
    if token.startswith("##"):
        return "##" + normalizer.normalize_str(token[2:])
    return normalizer.normalize_str(token)


def _tokenizer_stats(tokenizer, patents: list[Patent], sample: int = 500) -> dict[str, float]:
    """Return tokens per abstract and the [UNK] share over the first ``sample`` abstracts."""
    abstracts = [patent.abstract for patent in patents[:sample] if patent.abstract]
    if not abstracts:
        return {}
    encoded = tokenizer(abstracts, add_special_tokens=False)["input_ids"]
    total = sum(len(ids) for ids in encoded)
    unknown = sum(ids.count(tokenizer.unk_token_id) for ids in encoded)
    return {"tokens_per_abstract": round(total / len(encoded), 1),
            "unk_share": round(unknown / max(total, 1), 4)}

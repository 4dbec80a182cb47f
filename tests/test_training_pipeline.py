"""The training recipe end to end on a tiny configuration: every step, resume, skip, reload."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from encoder import load_encoder
from patentmatch.cli import main
from patentmatch.config import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent
EVAL_DIR = REPO_ROOT / "benchmarks" / "data" / "eval"

TINY = [
    "--device", "cpu", "--base", "scratch", "--vocab-size", "4000",
    "--scratch-hidden-size", "32", "--scratch-layers", "2", "--scratch-heads", "2",
    "--scratch-intermediate-size", "64", "--max-seq-length", "64",
    "--mlm-max-steps", "30", "--mlm-batch-size", "16", "--mlm-learning-rate", "1e-3",
    "--sbert-max-steps", "30", "--sbert-batch-size", "16", "--sbert-learning-rate", "1e-3",
    "--eval-corpus-size", "400", "--log-every", "10", "--checkpoint-every", "10",
]


@pytest.fixture(scope="module")
def small_corpus(sample_path, tmp_path_factory) -> Path:
    """Every dev query and relevant patent plus the first 200 others, as JSONL."""
    needed = set()
    with (EVAL_DIR / "dev-prior-art-pairs.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            needed.update({record["query_application_number"],
                           record["relevant_application_number"]})
    with (EVAL_DIR / "dev-fto-queries.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            needed.update(json.loads(line)["relevant_application_numbers"])
    kept, others = [], []
    with gzip.open(sample_path, "rt", encoding="utf-8") as handle:
        for line in handle:
            number = json.loads(line)["application_number"]
            if number in needed:
                kept.append(line)
            elif len(others) < 200:
                others.append(line)
    path = tmp_path_factory.mktemp("corpus") / "small.jsonl"
    path.write_text("".join(kept + others), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def finished_run(small_corpus, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("run") / "tiny"
    code = main(["-q", "train", "all", "--output-dir", str(output), "--corpus",
                 str(small_corpus), *TINY])
    assert code == 0
    return output


def _metrics(run: Path, step_dir: str) -> dict:
    return json.loads((run / step_dir / "metrics.json").read_text(encoding="utf-8"))


def test_all_steps_write_models_and_metrics(finished_run):
    for step_dir in ("1-vocab", "2-mlm", "3-sbert"):
        assert (finished_run / step_dir / "metrics.json").is_file()
        assert (finished_run / step_dir / "model" / "model.safetensors").is_file()
    assert (finished_run / "config.json").is_file()
    assert (finished_run / "1-vocab" / "learned_vocab.txt").is_file()


def test_mlm_loss_falls(finished_run):
    train = _metrics(finished_run, "2-mlm")["train"]
    assert train["steps"] == 30
    assert train["whole_word_mask"] is True
    assert train["loss_last"] < train["loss_first"]


def test_sentence_loss_falls(finished_run):
    train = _metrics(finished_run, "3-sbert")["train"]
    assert train["steps"] == 30
    assert set(train["pair_kinds"]) == {"title-abstract", "sentence-rest"}
    assert train["loss_last"] < train["loss_first"]


def test_losses_logged_per_step(finished_run):
    with (finished_run / "3-sbert" / "losses.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["step"]) for row in rows] == list(range(1, 31))


def test_evaluation_before_and_after(finished_run):
    mlm = _metrics(finished_run, "2-mlm")
    vocab = _metrics(finished_run, "1-vocab")
    assert mlm["eval_before"] == vocab["eval_after"]
    assert vocab["eval_before"] is None
    results = _metrics(finished_run, "3-sbert")["eval_after"]["results"]
    prior_art = results["dev-prior-art-pairs [title+abstract]"]
    assert prior_art["two-stage"]["queries"] == 90
    for name in ("ndcg@10", "recall@10", "recall@100", "mrr"):
        assert 0.0 <= prior_art["dense-abstract"][name] <= 1.0


def test_metrics_csv_has_every_stage(finished_run):
    with (finished_run / "metrics.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["stage"] for row in rows} == {"1-vocab", "2-mlm", "3-sbert"}
    assert {row["method"] for row in rows} == {"dense-abstract", "two-stage"}


def test_trained_model_loads_and_encodes(finished_run):
    encoder = load_encoder(finished_run / "3-sbert" / "model", Settings(device="cpu"))
    vectors = encoder.encode(["반도체 웨이퍼 세정 장치", "화장료 조성물"])
    assert vectors.shape == (2, 32)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert encoder.max_seq_length == 64


def test_rerun_skips_done_steps(finished_run, small_corpus):
    before = {step: (finished_run / step / "metrics.json").stat().st_mtime_ns
              for step in ("1-vocab", "2-mlm", "3-sbert")}
    assert main(["-q", "train", "all", "--output-dir", str(finished_run)]) == 0
    after = {step: (finished_run / step / "metrics.json").stat().st_mtime_ns
             for step in before}
    assert after == before


def test_interrupted_mlm_resumes_from_checkpoint(finished_run, small_corpus, tmp_path):
    import shutil

    run = tmp_path / "resume"
    shutil.copytree(finished_run, run)
    # A run stopped after step 20 leaves the step-20 checkpoint and no model.
    (run / "2-mlm" / "metrics.json").unlink()
    shutil.rmtree(run / "2-mlm" / "model")
    assert (run / "2-mlm" / "checkpoint" / "trainer_state.pt").is_file()
    assert main(["-q", "train", "mlm", "--output-dir", str(run)]) == 0
    train = _metrics(run, "2-mlm")["train"]
    assert train["resumed_at_step"] == 20
    with (run / "2-mlm" / "losses.csv").open(encoding="utf-8") as handle:
        steps = [int(row["step"]) for row in csv.DictReader(handle)]
    assert steps == list(range(1, 31))


def test_sbert_needs_earlier_steps(tmp_path, small_corpus):
    from training.config import TrainConfig
    from training.pipeline import Pipeline, PipelineError

    config = TrainConfig(output_dir=tmp_path / "empty", corpus=small_corpus, base="scratch",
                         device="cpu")
    with pytest.raises(PipelineError, match="train vocab"):
        Pipeline(config).run_sbert()


def test_extend_local_base_with_external_vocab(finished_run, small_corpus, tmp_path):
    external = tmp_path / "external_vocab.txt"
    external.write_text("[PAD]\n특허괴물\n##괴물\n", encoding="utf-8")
    base = finished_run / "1-vocab" / "model"
    run = tmp_path / "extend"
    assert main(["-q", "train", "vocab", "--output-dir", str(run), "--corpus",
                 str(small_corpus), "--base", str(base), "--vocab-size", "5000",
                 "--external-vocab", str(external), "--eval-corpus-size", "400",
                 "--max-seq-length", "64", "--device", "cpu"]) == 0
    train = _metrics(run, "1-vocab")["train"]
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(run / "1-vocab" / "model")
    assert train["external_tokens"] == 3
    assert tokenizer.convert_tokens_to_ids("특허괴물") == train["base_vocab_size"]
    assert train["new_tokens"] > 2
    assert len(tokenizer) == train["vocab_size"]
    assert train["after"]["tokens_per_abstract"] <= train["before"]["tokens_per_abstract"]

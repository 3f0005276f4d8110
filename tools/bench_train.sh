#!/usr/bin/env bash
# Training-step and inference speed of facefind's trainable MobileFaceNet next to PyTorch (CPU,
# 2 threads, same architecture, batch 64, 112x112, ArcFace over 1,262 classes, SGD momentum), in
# one command. Needs a Python with PyPI torch: PYTHON=/path/to/venv/bin/python (default python3).
#   tools/bench_train.sh [BATCH] [STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
batch="${1:-64}"; steps="${2:-5}"
py="${PYTHON:-python3}"
shared="${FACEFIND_SHARED:-$(pwd)/../shared}"
cargo bench --bench train --no-run >/dev/null 2>&1
ours=$(cargo bench -q --bench train -- "$batch" "$steps" 2>/dev/null | tail -1)
torch=$("$py" "$shared/tools/torch_mobilefacenet_step.py" "$batch" "$steps" 1262 | tail -1)
echo "$ours"
echo "$torch"
o_train=$(echo "$ours" | sed -E 's/.*train step batch [0-9]+: ([0-9.]+) images\/s.*/\1/')
o_graph=$(echo "$ours" | sed -E 's/.*inference graph ([0-9.]+) images\/s.*/\1/')
o_kern=$(echo "$ours" | sed -E 's/.*inference kernels ([0-9.]+) images\/s.*/\1/')
t_train=$(echo "$torch" | sed -E 's/.*train step batch [0-9]+: ([0-9.]+) images\/s.*/\1/')
t_inf=$(echo "$torch" | sed -E 's/.*inference ([0-9.]+) images\/s.*/\1/')
echo
echo "| what (batch $batch) | facefind | PyTorch | facefind / PyTorch |"
echo "|---|---|---|---|"
printf '| train step (images/s) | %s | %s | %.2f |\n' "$o_train" "$t_train" "$(echo "$o_train / $t_train" | bc -l)"
printf '| inference, trainable graph folded (images/s) | %s | %s | %.2f |\n' "$o_graph" "$t_inf" "$(echo "$o_graph / $t_inf" | bc -l)"
printf '| inference, CPU kernels (images/s) | %s | %s | %.2f |\n' "$o_kern" "$t_inf" "$(echo "$o_kern / $t_inf" | bc -l)"

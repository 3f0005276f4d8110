#!/usr/bin/env bash
# An iresnet-50-sized ONNX embedder (random weights, made by tests/onnx_reference.py) through
# facefind's layers and through onnxruntime, on the same images and the same number of CPU
# threads, in one run: embeddings compared, faces/s and their ratio. Needs a Python with torch,
# onnx, onnxruntime and numpy.
#   bash tools/bench_onnx.sh [PYTHON] [BATCH]
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
py="${1:-python3}"
batch="${2:-8}"
threads=$(nproc)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$here"
"$py" tests/onnx_reference.py --iresnet50 "$work/r50.onnx" 2>/dev/null
cargo bench -q --bench onnx -- "$work/r50.onnx" "$work/r50.json" "$batch" 2>/dev/null | tee "$work/facefind.txt"
"$py" - "$work/r50.onnx" "$batch" "$threads" <<'PY' | tee "$work/ort.txt"
import sys, time
import numpy as np, onnxruntime as ort
path, batch, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
# the images of tests/onnx_reference.py, as benches/onnx.rs makes them
k, y, x, c = np.meshgrid(np.arange(batch), np.arange(112), np.arange(112), np.arange(3), indexing="ij")
img = ((((x * 7 + y * 13 + c * 29 + k * 31) % 256).astype(np.float32) - 127.5) / 127.5).transpose(0, 3, 1, 2).copy()
so = ort.SessionOptions()
so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
name = sess.get_inputs()[0].name
sess.run(None, {name: img})
best = 1e9
for _ in range(5):
    t = time.perf_counter()
    sess.run(None, {name: img})
    best = min(best, time.perf_counter() - t)
print(f"onnxruntime {batch / best:.2f} faces/s (batch {batch}, {threads} threads, best of 5)")
PY
f=$(sed -nE 's/^facefind ([0-9.]+) faces.*/\1/p' "$work/facefind.txt")
o=$(sed -nE 's/^onnxruntime ([0-9.]+) faces.*/\1/p' "$work/ort.txt")
printf 'facefind / onnxruntime: %.3f\n' "$(echo "$f / $o" | bc -l)"

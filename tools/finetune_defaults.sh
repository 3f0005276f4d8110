#!/usr/bin/env bash
# Fine-tuning defaults on a small set, as a user would run them: 15 people of lfw-train (the
# first 15 by name with at least 10 photos, 11 photos each: 165 photos), `train --init shipped`
# with every default but the learning rate, for each LR in LRS. Prints per run: the held-back
# people's validation before and after (what `train` decides by), whether the embedder was
# written, and 10-fold accuracy on pairsDevTest (people in no run) against the shipped embedder.
# About 3 minutes per learning rate on 2 cores.
# Env: LRS ("0.01 1e-3 1e-4 3e-5"), EPOCHS (default: train's), OPTIMIZER (default: train's),
#      OUT (runs/finetune-defaults),
#      FACEFIND_FACES (../shared/faces).
set -euo pipefail
cd "$(dirname "$0")/.."
faces="${FACEFIND_FACES:-$(pwd)/../shared/faces}"
out="${OUT:-runs/finetune-defaults}"
mkdir -p "$out"
cargo build --release -q --bin facefind
ff="$out/facefind"
cp target/release/facefind "$ff"
data="$out/people"
if [[ ! -d $data ]]; then
  python3 - "$faces/lfw-train" "$data" <<'PY'
import os, shutil, sys
src, dst = sys.argv[1], sys.argv[2]
taken = 0
for p in sorted(os.listdir(src)):
    photos = sorted(os.listdir(os.path.join(src, p)))
    if len(photos) < 10:
        continue
    os.makedirs(os.path.join(dst, p))
    for f in photos[:11]:
        shutil.copy(os.path.join(src, p, f), os.path.join(dst, p, f))
    taken += 1
    if taken == 15:
        break
PY
fi
acc() { "$ff" --device cpu ${1:+--embedder "$1"} verify --pairs "$faces/lfw-view1/pairsDevTest.txt" --images "$faces/lfw-view1/images" --json \
          | python3 -c 'import json,sys; d=json.load(sys.stdin); print("%.2f" % (100*d["accuracy"]))'; }
echo "shipped embedder, pairsDevTest 10-fold: $(acc "") %"
echo
echo "| --lr | held-back people before → after (pairs) | embedder written | pairsDevTest 10-fold |"
echo "|---|---|---|---|"
for lr in ${LRS:-0.01 1e-3 1e-4 3e-5}; do
  run="$out/lr-$lr"
  rm -rf "$run"
  set +e
  "$ff" --device cpu train "$data" --out "$run" --init shipped --cache "$out/crops.sqlite" --lr "$lr" ${EPOCHS:+--epochs "$EPOCHS"} ${OPTIMIZER:+--optimizer "$OPTIMIZER"} --json > "$run.json" 2> "$run.log"
  set -e
  row=$(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
v = d["validation"] or {}
f = lambda x: "-" if x is None else "%.2f %%" % (100 * x)
print("%s → %s (%s pairs)|%s" % (f(v.get("before")), f(v.get("after")), v.get("pairs"), "yes" if d["embedder"] else "no (worse)"))' "$run.json")
  val=${row%%|*}; written=${row##*|}
  if [[ -f $run/embedder.safetensors ]]; then tuned="$(acc "$run/embedder.safetensors") %"; else tuned="(not written)"; fi
  echo "| $lr | $val | $written | $tuned |"
done

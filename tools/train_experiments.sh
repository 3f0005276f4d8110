#!/usr/bin/env bash
# The training experiments of README "Training", in one run (background it: about two hours on
# 2 cores). Prints the tables.
#   1. fine-tune: --init shipped --head arcface on lfw-train; pairsDevTest 10-fold accuracy and
#      the album mAP before (shipped) and after, side by side;
#   2. MobileFaceNet from scratch on lfw-train with softmax, CosFace, ArcFace and SphereFace, the
#      same budget each (EPOCHS x STEPS steps of batch 32); pairsDevTest 10-fold accuracy.
# Env: PARTS ("finetune scratch"), FT_EPOCHS (2), SCRATCH_EPOCHS (2), SCRATCH_STEPS (steps per
#      epoch; empty = whole epochs, 192 of batch 32), HEADS ("softmax cosface arcface sphereface"),
#      OUT (runs/), FACEFIND_FACES (../shared/faces).
set -euo pipefail
cd "$(dirname "$0")/.."
faces="${FACEFIND_FACES:-$(pwd)/../shared/faces}"
out="${OUT:-runs}"
mkdir -p "$out"
cargo build --release -q --bin facefind
# a copy, so that rebuilding while this runs does not touch the binary in use
ff="$out/facefind"
cp target/release/facefind "$ff"
val=(--val-pairs "$faces/lfw-view1/pairsDevTest.txt" --val-images "$faces/lfw-view1/images")
acc() { "$ff" --device cpu ${1:+--embedder "$1"} verify --pairs "$faces/lfw-view1/pairsDevTest.txt" --images "$faces/lfw-view1/images" --json \
          | python3 -c 'import json,sys; d=json.load(sys.stdin); a, s = d["accuracy"], d["accuracy_std"]; print(f"{100*a:.2f} ± {100*s:.2f}")'; }
# album mAP through tests/album.rs (an empty FACEFIND_EMBEDDER means the shipped embedder)
album() { FACEFIND_FACES="$faces" FACEFIND_EMBEDDER="${1:-}" cargo test -q --release --test album -- --include-ignored --nocapture 2>&1 | sed -n 's/^mean average precision: //p' | head -1; }

parts="${PARTS:-finetune scratch}"
steps="${SCRATCH_STEPS:-}"

# 1. fine-tune
if [[ $parts == *finetune* ]]; then
"$ff" --device cpu train "$faces/lfw-train" --out "$out/finetune" --init shipped --head arcface \
    --epochs "${FT_EPOCHS:-2}" --batch 32 --lr 1e-4 --lr-step 2 "${val[@]}" --seed 1 > "$out/finetune.log" 2>&1
base_acc=$(acc "")
ft_acc=$(acc "$out/finetune/embedder.safetensors")
base_map=$(album "")
ft_map=$(album "$out/finetune/embedder.safetensors")
echo "| fine-tune (--init shipped --head arcface, ${FT_EPOCHS:-2} epochs) | pairsDevTest 10-fold | album mAP |"
echo "|---|---|---|"
echo "| shipped MobileFaceNet | $base_acc % | $base_map |"
echo "| fine-tuned on lfw-train | $ft_acc % | $ft_map |"
cat "$out/finetune/train.csv"
echo
fi

# 2. from scratch, same budget per head
[[ $parts == *scratch* ]] || exit 0
echo "| head (scratch, ${SCRATCH_EPOCHS:-2} epochs${steps:+ x $steps steps} of batch 32) | final loss | train acc | pairsDevTest 10-fold |"
echo "|---|---|---|---|"
for head in ${HEADS:-softmax cosface arcface sphereface}; do
    "$ff" --device cpu train "$faces/lfw-train" --out "$out/scratch-$head" --init scratch --head "$head" \
        --epochs "${SCRATCH_EPOCHS:-2}" ${steps:+--max-steps "$steps"} --batch 32 --schedule poly --warmup 0.25 --lr 0.1 \
        --clip 5 --seed 1 "${val[@]}" > "$out/scratch-$head.log" 2>&1 || { echo "| $head | failed: $(tail -1 "$out/scratch-$head.log") | | |"; continue; }
    last=$(tail -1 "$out/scratch-$head/train.csv")
    IFS=, read -r _ loss tacc _ _ _ <<< "$last"
    echo "| $head | $loss | $tacc | $(acc "$out/scratch-$head/embedder.safetensors") % |"
done

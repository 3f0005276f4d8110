#!/usr/bin/env bash
# Speed and accuracy of two commits side by side, in one command: `verify` on LFW pairsDevTest
# and indexing the album (benches/small_photos, upscale when-needed), then the detector and the
# embedder alone (benches/pipeline). Each commit is checked out in its own worktree and built
# there with this checkout's target folder (compiled dependencies are shared); runs alternate
# base, new, base, new ... so that a machine that slows down hurts both alike.
#   tools/bench_compare.sh BASE [NEW] [ROUNDS]      (NEW: HEAD; ROUNDS: 2)
set -euo pipefail
cd "$(dirname "$0")/.."
base="$1"; new="${2:-HEAD}"; rounds="${3:-2}"
repo="$(pwd)"
export CARGO_TARGET_DIR="$repo/target"
export FACEFIND_FACES="${FACEFIND_FACES:-$repo/../shared/faces}"
work="$(mktemp -d)"
trap 'git -C "$repo" worktree remove --force "$work/base" 2>/dev/null; git -C "$repo" worktree remove --force "$work/new" 2>/dev/null; rm -rf "$work"' EXIT
git worktree add -q --detach "$work/base" "$base"
git worktree add -q --detach "$work/new" "$new"
for side in base new; do
  (cd "$work/$side" && cargo bench --bench small_photos --bench pipeline --no-run -q 2>/dev/null)
done
for r in $(seq "$rounds"); do
  for side in base new; do
    rev=$(git -C "$work/$side" rev-parse --short HEAD)
    echo "## round $r, $side ($rev)"
    (cd "$work/$side" && cargo bench -q --bench small_photos -- when-needed 2>/dev/null | tail -1)
    (cd "$work/$side" && cargo bench -q --bench pipeline 2>/dev/null | tail -3)
  done
done

#!/usr/bin/env bash
# Peak memory while indexing huge photos: 50 files of 100 MP (PNG, TIFF, HEIC) next to 50 JPEGs
# of 100 MP, each folder indexed from scratch by the release binary; prints peak RSS and time.
# Goal (issue 10): every folder within 2 GB peak RSS.
# Needs a Python with numpy, Pillow and pillow-heif to make the photos (PYTHON=..., default
# python3) and about 8 GB of free disk under $WORK (default /tmp/facefind-memory).
# BASELINE=/path/to/an/older/facefind adds its rows (same folders, same run) for a ratio.
#   tools/bench_memory.sh [FILES_PER_FOLDER]
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-50}"
py="${PYTHON:-python3}"
work="${WORK:-/tmp/facefind-memory}"
faces="${FACEFIND_FACES:-$(pwd)/../shared/faces}"
cargo build --release -q
bin=target/release/facefind
mkdir -p "$work"
"$py" - "$work" "$n" "$faces" <<'PY'
import os, sys
import numpy as np
from PIL import Image
import pillow_heif
work, n, faces = sys.argv[1], int(sys.argv[2]), sys.argv[3]
side = 10000  # 100 MP
# a real group photo blown up to 100 MP with a little grain, so the detector has faces to find
src = Image.open(os.path.join(faces, "album/dlib/2008_002079.jpg")).convert("RGB").resize((side, side), Image.BILINEAR)
a = np.asarray(src).astype(np.int16)
rng = np.random.default_rng(1)
a = np.clip(a + rng.integers(-3, 4, a.shape, dtype=np.int16), 0, 255).astype(np.uint8)
img = Image.fromarray(a)
kinds = {"png": n * 2 // 5, "tif": n * 2 // 5, "heic": n - 2 * (n * 2 // 5), "jpg": n}
for kind, count in kinds.items():
    folder = os.path.join(work, "jpeg" if kind == "jpg" else "huge")
    os.makedirs(folder, exist_ok=True)
    first = os.path.join(folder, f"{kind}-000.{kind}")
    if not os.path.exists(first):
        if kind == "png":
            img.save(first, compress_level=1)
        elif kind == "tif":
            img.save(first, compression="tiff_adobe_deflate")
        elif kind == "heic":
            pillow_heif.from_pillow(img).save(first, quality=60)
        else:
            img.save(first, quality=90)
    data = open(first, "rb").read()
    for i in range(1, count):
        p = os.path.join(folder, f"{kind}-{i:03}.{kind}")
        if not os.path.exists(p):
            with open(p, "wb") as f:  # a copy, so every file is its own (not a link)
                f.write(data)
    print(f"{kind}: {count} files of {len(data) / 1e6:.0f} MB", flush=True)
PY
echo
echo "| binary | folder ($n files each, 100 MP) | peak RSS (MB) | seconds | photos/s |"
echo "|---|---|---|---|---|"
for b in ${BASELINE:+"$BASELINE"} "$bin"; do
  for folder in jpeg huge; do
    rm -f "$work/$folder.sqlite"*
    out=$( { /usr/bin/time -f "TIME %M %e" "$b" --device cpu index "$work/$folder" --catalog "$work/$folder.sqlite" --quiet >/dev/null; } 2>&1 | grep "^TIME" || true)
    read -r _ kb secs <<<"${out:-TIME 0 0}"
    name=$([ "$b" = "$bin" ] && echo "this build" || echo "baseline")
    printf '| %s | %s | %.0f | %.1f | %.2f |\n' "$name" "$folder" "$(echo "$kb / 1024" | bc -l)" "$secs" "$(echo "$n / ($secs + 0.001)" | bc -l)"
  done
done

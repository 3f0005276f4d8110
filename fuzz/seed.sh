#!/usr/bin/env bash
# Seed corpora for the cargo-fuzz targets (fuzz/corpus/, not committed): every photo fixture of
# tests/data, six small album photos, a two-photo catalog written by facefind, and a few pairs
# and list lines. Needs ../shared/faces (FACEFIND_FACES) and Python with Pillow.
#   bash fuzz/seed.sh && cargo +nightly fuzz run decode -- -max_total_time=300
set -euo pipefail
cd "$(dirname "$0")/.."
faces="${FACEFIND_FACES:-$(pwd)/../shared/faces}"
py="${PYTHON:-python3}"
c=fuzz/corpus
mkdir -p $c/decode $c/catalog_open $c/pairs $c/list
cp tests/data/formats/*.{jpg,png,tif,gif,webp} tests/data/heif/*.hei* tests/data/avif/*.avif tests/data/raw/exiftool-* $c/decode/
"$py" - "$faces/album" "$c/decode" <<'PY'
import glob, sys
from PIL import Image
for i, p in enumerate(sorted(glob.glob(sys.argv[1] + "/**/*.jpg", recursive=True))[:6]):
    im = Image.open(p)
    im.thumbnail((160, 160))
    im.save(f"{sys.argv[2]}/album{i}.jpg", quality=80)
PY
tmp=$(mktemp -d)
cp $c/decode/album0.jpg $c/decode/album1.jpg "$tmp/"
cargo run --release -q -- index "$tmp" --catalog "$tmp/catalog.sqlite" --quiet
cp "$tmp/catalog.sqlite" $c/catalog_open/two-photos.sqlite
rm -rf "$tmp"
head -4 "$faces/lfw-view1/pairsDevTest.txt" > $c/pairs/same.txt
sed -n 300,303p "$faces/lfw-view1/pairsDevTest.txt" > $c/pairs/different.txt
printf 'a/1.jpg 0\nb/2.jpg 1\nc d/3.jpg 1\n' > $c/list/list.txt

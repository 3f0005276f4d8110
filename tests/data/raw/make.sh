#!/usr/bin/env bash
# Real camera RAW files for the RAW preview test, and reference.json with what ExifTool and
# Pillow read from them: for each file, the largest embedded JPEG image ExifTool extracts
# (PreviewImage, JpgFromRaw or ThumbnailImage), its size and an 8x8 grid of RGB samples as
# Pillow decodes it, or "none" when the file embeds no usable JPEG.
#
# The files come from two Debian source packages' test data (real cameras' files, their
# image data cut down by those projects to keep them small):
#   exiv2 0.27.6 (test/data, GPL-2.0-or-later): Canon-R6-pruned.CR3, IMG_1361.dng
#   libimage-exiftool-perl 12.57 (t/images, the Perl licence: GPL-1.0-or-later or Artistic):
#     FujiFilm.raf, Panasonic.rw2, Nikon.nef, CanonRaw.cr2, CanonRaw.cr3, DNG.dng, SigmaDP2.x3f
# Run by hand as root on Debian bookworm (needs deb-src, exiftool and Python with Pillow):
#   apt-get install libimage-exiftool-perl && pip install pillow numpy && bash tests/data/raw/make.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
apt-get source --download-only exiv2=0.27.6-1 libimage-exiftool-perl=12.57+dfsg-1 >/dev/null
tar xzf exiv2_0.27.6.orig.tar.gz exiv2-0.27.6/test/data/Canon-R6-pruned.CR3 exiv2-0.27.6/test/data/IMG_1361.dng
tar xJf libimage-exiftool-perl_12.57+dfsg.orig.tar.xz --wildcards 'Image-ExifTool-12.57/t/images/*'
cp exiv2-0.27.6/test/data/{Canon-R6-pruned.CR3,IMG_1361.dng} "$here/"
for f in FujiFilm.raf Panasonic.rw2 Nikon.nef CanonRaw.cr2 CanonRaw.cr3 DNG.dng SigmaDP2.x3f; do
    cp "Image-ExifTool-12.57/t/images/$f" "$here/exiftool-$f"
done
cd "$here"
for f in *.CR3 *.dng *.raf *.rw2 *.nef *.cr2 *.cr3 *.x3f; do
    best=""; best_px=0
    for tag in PreviewImage JpgFromRaw ThumbnailImage; do
        exiftool -b "-$tag" "$f" > "$work/$tag.jpg" 2>/dev/null || true
        size=$(exiftool -s3 -ImageSize "$work/$tag.jpg" 2>/dev/null || true)
        if [[ "$size" =~ ^([0-9]+)x([0-9]+)$ ]] && (( BASH_REMATCH[1] * BASH_REMATCH[2] > best_px )); then
            best_px=$(( BASH_REMATCH[1] * BASH_REMATCH[2] )); best="$work/$tag.jpg"
            cp "$best" "$work/best-$f.jpg"
        fi
    done
    echo "$f ${best:+$work/best-$f.jpg}"
done > "$work/list.txt"
python3 - "$work/list.txt" <<'PY'
import json, sys
import numpy as np
from PIL import Image, ImageOps
out = {"reference": "the largest JPEG ExifTool extracts, decoded by Pillow (tests/data/raw/make.sh)", "files": {}}
for line in open(sys.argv[1]):
    parts = line.split()
    name = parts[0]
    if len(parts) == 1:
        out["files"][name] = {"none": True}
        continue
    im = ImageOps.exif_transpose(Image.open(parts[1])).convert("RGB")
    px = np.asarray(im)
    h, w = px.shape[:2]
    ys = [int((i + 0.5) * h / 8) for i in range(8)]
    xs = [int((i + 0.5) * w / 8) for i in range(8)]
    out["files"][name] = {"width": w, "height": h, "samples": [[px[y, x].tolist() for x in xs] for y in ys]}
json.dump(out, open("reference.json", "w"), indent=1)
print({k: v.get("none") or (v["width"], v["height"]) for k, v in out["files"].items()})
PY

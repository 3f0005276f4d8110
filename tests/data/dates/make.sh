#!/usr/bin/env bash
# Photos with capture dates written by ExifTool, and expected.json with what ExifTool reads back
# from each (EXIF DateTimeOriginal + OffsetTimeOriginal, else XMP-exif:DateTimeOriginal, else
# XMP-xmp:CreateDate; embedded first, then the sidecar), as facefind spells a capture time.
# The camera RAW files of ../raw are read as they are. The pictures are 32x24 gradients (ImageMagick); the HEIC and AVIF are copies of test files of
# ../heif and ../avif. Run by hand (Debian: apt-get install libimage-exiftool-perl imagemagick):
#   bash tests/data/dates/make.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
rm -f ./*.jpg ./*.png ./*.tif ./*.heic ./*.avif ./*.xmp expected.json
et() { exiftool -q -overwrite_original "$@"; }
convert -size 32x24 gradient:red-blue base.jpg
convert -size 32x24 gradient:red-blue -define png:exclude-chunks=date,time base.png
convert -size 32x24 gradient:red-blue -compress none base.tif

cp base.jpg jpeg-offset.jpg && et -DateTimeOriginal="2019:07:14 18:03:12" -OffsetTimeOriginal="+02:00" -SubSecTimeOriginal=25 jpeg-offset.jpg
cp base.jpg jpeg-plain.jpg && et -DateTimeOriginal="2001:02:03 04:05:06" jpeg-plain.jpg
cp base.jpg jpeg-rotated.jpg && et -Orientation#=6 -DateTimeOriginal="2003:03:03 03:03:03" -OffsetTimeOriginal="-07:00" jpeg-rotated.jpg
cp base.png png-exif.png && et -EXIF:DateTimeOriginal="2017:05:06 07:08:09" -EXIF:OffsetTimeOriginal="+09:00" png-exif.png
cp base.png png-xmp.png && et -XMP-exif:DateTimeOriginal="2016:01:02 03:04:05" png-xmp.png
cp base.tif tiff-offset.tif && et -DateTimeOriginal="2018:12:31 23:59:59" -OffsetTimeOriginal="-05:00" tiff-offset.tif
cp ../heif/RGB_8__29x100.heif heic-exif.heic && et -DateTimeOriginal="2021:12:24 20:15:00" -OffsetTimeOriginal="+01:00" heic-exif.heic
cp ../avif/pattern-420.avif avif-exif.avif && et -DateTimeOriginal="2022:02:22 22:22:22" avif-exif.avif
cp base.jpg xmp-only.jpg && et -XMP-exif:DateTimeOriginal="2015:06:01 10:00:00+01:00" xmp-only.jpg
cp base.jpg createdate.jpg && et -XMP-xmp:CreateDate="2012:03:04 05:06:07" createdate.jpg
cp base.jpg both.jpg && et -EXIF:DateTimeOriginal="2010:01:01 00:00:01" -XMP-exif:DateTimeOriginal="2015:01:01 00:00:01" both.jpg
cp base.jpg sidecar-a.jpg && exiftool -q -o sidecar-a.xmp -XMP-exif:DateTimeOriginal="2008:08:08 08:08:08" base.jpg
cp base.jpg sidecar-b.jpg && exiftool -q -o sidecar-b.jpg.xmp -XMP-xmp:CreateDate="2009:09:09 09:09:09-03:00" base.jpg
cp base.jpg none.jpg
rm base.jpg base.png base.tif

python3 - <<'PY'
import glob, json, os, subprocess
def fmt(v, off=None):
    # ExifTool prints "YYYY:MM:DD hh:mm:ss[.ss][±hh:mm|Z]"
    if not v: return None
    d, t = v[:10].replace(':', '-'), v[11:19]
    z = v[19:].lstrip('.0123456789')
    z = '+00:00' if z == 'Z' else z
    return f"{d}T{t}" + (off or z or '')
out = {}
photos = sorted(f for f in glob.glob('*') + glob.glob('../raw/*') if not f.endswith(('.xmp', '.sh', '.json', '.md')))
for f in photos:
    tags = json.loads(subprocess.check_output(['exiftool', '-j', '-G1', '-a', f]))[0]
    exif = next((v for k, v in tags.items() if k.endswith(':DateTimeOriginal') and not k.startswith('XMP')), None)
    off = next((v for k, v in tags.items() if k.endswith(':OffsetTimeOriginal')), None)
    val = fmt(exif, off) if exif else None
    stem = os.path.splitext(f)[0]
    packets = [tags] + [json.loads(subprocess.check_output(['exiftool', '-j', '-G1', '-a', s]))[0]
                        for s in (stem + '.xmp', f + '.xmp') if os.path.exists(s)]
    for name in ('XMP-exif:DateTimeOriginal', 'XMP-xmp:CreateDate'):
        if val: break
        val = next((fmt(p[name]) for p in packets if name in p), None)
    out[f] = val
json.dump(out, open('expected.json', 'w'), indent=1, sort_keys=True)
print(json.dumps(out, indent=1, sort_keys=True))
PY

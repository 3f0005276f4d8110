#!/usr/bin/env bash
# Photos and sidecars with named face regions written by ExifTool, and expected.json with what
# ExifTool reads back from each (every region's name and area as written, the photo's EXIF
# orientation and its stored size). MWG regions (XMP-mwg-rs RegionInfo) embedded in a JPEG, on
# photos turned by EXIF orientation 6 and 8, in `photo.xmp` and in `photo.jpg.xmp` sidecars;
# Microsoft regions (XMP-MP RegionInfoMP) in a JPEG. `composite.xmp` names the two faces of a
# 500x250 photo of two 250x250 LFW photos side by side (left Ann, right Bob) and one place with
# no face (Cy), for the tests that make such photos; `turned-composite.jpg` carries the same
# two names for such a photo stored turned (orientation 6), its EXIF and XMP for the tests to
# put on those pixels. The pictures are 64x32 gradients
# (ImageMagick). Run by hand (Debian: apt-get install libimage-exiftool-perl imagemagick):
#   bash tests/data/regions/make.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
rm -f ./*.jpg ./*.xmp expected.json
et() { exiftool -q -overwrite_original "$@"; }
convert -size 64x32 gradient:red-blue base.jpg
two='{AppliedToDimensions={W=64,H=32,Unit=pixel},RegionList=[{Area={X=0.25,Y=0.5,W=0.2,H=0.4,Unit=normalized},Name=Ann,Type=Face},{Area={X=0.75,Y=0.375,W=0.125,H=0.25,Unit=normalized},Name=Bob,Type=Face},{Area={X=0.5,Y=0.5,W=0.1,H=0.1,Unit=normalized},Name=Rex,Type=Pet}]}'
cp base.jpg embedded.jpg && et -RegionInfo="$two" embedded.jpg
cp base.jpg rotated6.jpg && et -Orientation#=6 -RegionInfo="$two" rotated6.jpg
cp base.jpg rotated8.jpg && et -Orientation#=8 -RegionInfo="$two" rotated8.jpg
cp base.jpg sidecar-a.jpg && exiftool -q -o sidecar-a.xmp -RegionInfo="$two" base.jpg
cp base.jpg sidecar-b.jpg && exiftool -q -o sidecar-b.jpg.xmp -RegionInfo="$two" base.jpg
cp base.jpg microsoft.jpg && et -RegionInfoMP='{Regions=[{PersonDisplayName=Cy,Rectangle=0.1|, 0.2|, 0.3|, 0.4},{PersonDisplayName=Di,Rectangle=0.5|, 0.25|, 0.25|, 0.5}]}' microsoft.jpg
cp base.jpg none.jpg
exiftool -q -o composite.xmp -RegionInfo='{AppliedToDimensions={W=500,H=250,Unit=pixel},RegionList=[{Area={X=0.25,Y=0.48,W=0.2,H=0.44,Unit=normalized},Name=Ann,Type=Face},{Area={X=0.75,Y=0.48,W=0.2,H=0.44,Unit=normalized},Name=Bob,Type=Face},{Area={X=0.5,Y=0.08,W=0.06,H=0.1,Unit=normalized},Name=Cy,Type=Face}]}' base.jpg
# the same two faces on a photo stored turned (EXIF orientation 6): the regions are for the
# stored 250x500 pixels; the tests put these segments on such pixels
cp base.jpg turned-composite.jpg && et -Orientation#=6 -RegionInfo='{AppliedToDimensions={W=250,H=500,Unit=pixel},RegionList=[{Area={X=0.48,Y=0.75,W=0.44,H=0.2,Unit=normalized},Name=Ann,Type=Face},{Area={X=0.48,Y=0.25,W=0.44,H=0.2,Unit=normalized},Name=Bob,Type=Face}]}' turned-composite.jpg
rm base.jpg

python3 - <<'PY'
import glob, json, subprocess
def read(path):
    # the sidecars' own photo: what ExifTool reads of the photo itself
    out = json.loads(subprocess.check_output(stderr=subprocess.DEVNULL, args=['exiftool', '-j', '-n', '-struct', '-RegionInfo', '-RegionInfoMP', '-Orientation', '-ImageWidth', '-ImageHeight', path]))[0]
    regions = []
    for r in (out.get('RegionInfo') or {}).get('RegionList', []):
        a = r['Area']
        regions.append({'name': r.get('Name'), 'type': r.get('Type'), 'mwg': [a['X'], a['Y'], a['W'], a['H']]})
    for r in (out.get('RegionInfoMP') or {}).get('Regions', []):
        regions.append({'name': r.get('PersonDisplayName'), 'mp': [float(v) for v in str(r['Rectangle']).split(',')]})
    return {'orientation': out.get('Orientation', 1), 'width': out.get('ImageWidth'), 'height': out.get('ImageHeight'), 'regions': regions}
expected = {}
for f in sorted(glob.glob('*.jpg')):
    e = read(f)
    for side in (f[:-4] + '.xmp', f + '.xmp'):
        try:
            e['regions'] += read(side)['regions']
        except (subprocess.CalledProcessError, IndexError):
            pass
    expected[f] = e
expected['composite.xmp'] = read('composite.xmp')
json.dump(expected, open('expected.json', 'w'), indent=1, sort_keys=True)
PY

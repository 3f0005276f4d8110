#!/usr/bin/env bash
# Names to other tools, checked by another tool: indexes FOLDER into a new catalog, names every
# person of two faces or more ("P<id>"), exports the names as XMP sidecars
# (`people --export-xmp`), and reads every sidecar back with ExifTool: each named face must
# come back as one MWG region of its name whose box (turned by the photo's EXIF orientation)
# is within 0.5 % of the photo's size of facefind's box. Prints what it compared and the
# largest difference. Then the photos and the sidecars, copied into a new folder, are indexed into
# an empty catalog: the same people must come back. Needs exiftool (Debian: libimage-exiftool-perl) and a release build.
#   bash tools/xmp_roundtrip.sh FOLDER
set -euo pipefail
folder="$(cd "$1" && pwd)"
here="$(cd "$(dirname "$0")/.." && pwd)"
ff="$here/target/release/facefind"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export FACEFIND_MODELS="$here/models"
"$ff" --device cpu people "$folder" --catalog "$work/c.sqlite" --json > "$work/people.json"
python3 - "$work/people.json" > "$work/names.txt" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))
for p in v["people"]:
    if p["name"] is None and len(p["faces"]) >= 2:
        print(p["id"])
PY
while read -r id; do "$ff" --device cpu people "$folder" --catalog "$work/c.sqlite" --name "$id" "P$id" > /dev/null; done < "$work/names.txt"
"$ff" --device cpu people "$folder" --catalog "$work/c.sqlite" --json > "$work/people.json"
"$ff" --device cpu people "$folder" --catalog "$work/c.sqlite" --export-xmp "$work/xmp" --json
python3 - "$folder" "$work/people.json" "$work/xmp" <<'PY'
import json, os, subprocess, sys
folder, people, xmp = sys.argv[1], json.load(open(sys.argv[2])), sys.argv[3]
want = {}
for p in people["people"]:
    if p["name"]:
        for f in p["faces"]:
            want.setdefault(f["path"], []).append((p["name"], f["box"]))
def turn(r, o):
    f = {1: lambda x, y: (x, y), 2: lambda x, y: (1 - x, y), 3: lambda x, y: (1 - x, 1 - y), 4: lambda x, y: (x, 1 - y),
         5: lambda x, y: (y, x), 6: lambda x, y: (1 - y, x), 7: lambda x, y: (1 - y, 1 - x), 8: lambda x, y: (y, 1 - x)}[o]
    a, b = f(r[0], r[1]), f(r[2], r[3])
    return [min(a[0], b[0]), min(a[1], b[1]), max(a[0], b[0]), max(a[1], b[1])]
worst, n, orient = 0.0, 0, {}
for path, faces in sorted(want.items()):
    img = json.loads(subprocess.check_output(["exiftool", "-j", "-n", "-Orientation", "-ImageWidth", "-ImageHeight", os.path.join(folder, path)]))[0]
    o = img.get("Orientation", 1) or 1
    orient[o] = orient.get(o, 0) + 1
    sw, sh = img["ImageWidth"], img["ImageHeight"]
    w, h = (sh, sw) if o >= 5 else (sw, sh)
    side = json.loads(subprocess.check_output(["exiftool", "-j", "-n", "-struct", "-RegionInfo", os.path.join(xmp, path + ".xmp")]))[0]
    info = side["RegionInfo"]
    dims = info["AppliedToDimensions"]
    assert (dims["W"], dims["H"]) == (sw, sh), (path, dims, sw, sh)
    got = []
    for r in info["RegionList"]:
        a = r["Area"]
        rect = [a["X"] - a["W"] / 2, a["Y"] - a["H"] / 2, a["X"] + a["W"] / 2, a["Y"] + a["H"] / 2]
        got.append((r["Name"], turn(rect, o)))
    assert len(got) == len(faces), (path, got, faces)
    faces.sort(key=lambda f: (f[0], f[1][0]))
    got.sort(key=lambda g: (g[0], g[1][0]))
    for (name, box), (gname, grect) in zip(faces, got):
        assert name == gname, (path, name, gname)
        x, y, bw, bh = box
        mine = [max(0, x / w), max(0, y / h), min(1, (x + bw) / w), min(1, (y + bh) / h)]
        worst = max(worst, max(abs(p - q) for p, q in zip(mine, grect)))
        n += 1
print(f"{n} named faces in {len(want)} sidecars read back by ExifTool; orientations {dict(sorted(orient.items()))}; "
      f"largest difference {worst * 100:.4f} % of the photo's side (limit 0.5 %)")
assert worst <= 0.005
PY
# import into an empty catalog: a copy of the photos with the sidecars beside them
mkdir -p "$work/copy"
(cd "$folder" && find . -type f | while read -r f; do mkdir -p "$work/copy/$(dirname "$f")"; cp "$f" "$work/copy/$f"; done)
(cd "$work/xmp" && find . -name '*.xmp' | while read -r f; do cp "$f" "$work/copy/$f"; done)
"$ff" --device cpu people "$work/copy" --catalog "$work/again.sqlite" --json > "$work/again.json"
python3 - "$work/people.json" "$work/again.json" <<'PY'
import json, sys
def named(path):
    v = json.load(open(path))
    return {p["name"]: sorted((f["path"], f["face"]) for f in p["faces"]) for p in v["people"] if p["name"]}
a, b = named(sys.argv[1]), named(sys.argv[2])
same = sum(a[n] == b.get(n) for n in a)
print(f"imported into an empty catalog: {same} of {len(a)} named people the same ({sum(len(v) for v in a.values())} faces)")
assert a == b, (a, b)
PY

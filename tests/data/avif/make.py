"""AVIF fixtures for the HEIF/AVIF decoder test, and reference.json with the pixels libavif
(dav1d, through Pillow) decodes: size after `irot`, an 8x8 grid of RGB samples, or the error.
Run by hand: pip install numpy pillow && python tests/data/avif/make.py

A 96x64 pattern (gradients and two colour blocks) saved as 8-bit 4:2:0 and 4:4:4, once more
with EXIF orientation 6 (Pillow writes it as `irot`; Pillow's reader does not apply `irot`, so
its reference is turned here), a copy cut in half, and the pattern at 192x128 as a 3x2 grid of
64x64 tiles (libavif's `avifenc --grid`, Debian package libavif-bin; Pillow writes no grids)."""
import json, os, subprocess, tempfile

import numpy as np
from PIL import Image

here = os.path.dirname(os.path.abspath(__file__))
w, h = 96, 64
x = np.linspace(0, 255, w)[None, :].repeat(h, 0)
y = np.linspace(0, 255, h)[:, None].repeat(w, 1)
a = np.stack([x, y, 255 - x], -1).astype(np.uint8)
a[10:30, 10:40] = [220, 40, 40]
a[35:60, 50:90] = [30, 200, 60]
im = Image.fromarray(a)
im.save(os.path.join(here, "pattern-420.avif"), quality=90)
im.save(os.path.join(here, "pattern-444.avif"), quality=90, subsampling="4:4:4")
exif = im.getexif()
exif[0x0112] = 6
im.save(os.path.join(here, "pattern-irot.avif"), quality=90, exif=exif.tobytes())
data = open(os.path.join(here, "pattern-420.avif"), "rb").read()
open(os.path.join(here, "truncated.avif"), "wb").write(data[: len(data) // 2])
with tempfile.TemporaryDirectory() as tmp:
    png = os.path.join(tmp, "grid.png")
    im.resize((192, 128), Image.BILINEAR).save(png)
    subprocess.run(["avifenc", "--grid", "3x2", "-y", "420", "--min", "4", "--max", "12", png, os.path.join(here, "grid-3x2.avif")], check=True, capture_output=True)

out = {"decoder": f"libavif via Pillow {Image.__version__}", "files": {}}
for name in sorted(os.listdir(here)):
    if not name.endswith(".avif"):
        continue
    try:
        r = Image.open(os.path.join(here, name))
        r.load()
        px = np.asarray(r.convert("RGB"))
    except Exception as e:  # noqa: BLE001 - the reason is the reference
        out["files"][name] = {"error": str(e)}
        continue
    if name == "pattern-irot.avif":
        px = np.rot90(px, k=-1)  # orientation 6: turned 90 degrees clockwise to display
    hh, ww = px.shape[:2]
    ys = [int((i + 0.5) * hh / 8) for i in range(8)]
    xs = [int((i + 0.5) * ww / 8) for i in range(8)]
    out["files"][name] = {"width": ww, "height": hh, "samples": [[px[yy, xx].tolist() for xx in xs] for yy in ys], "mean": float(px.mean())}
json.dump(out, open(os.path.join(here, "reference.json"), "w"), indent=1)
print({k: v.get("error") or (v["width"], v["height"]) for k, v in out["files"].items()})

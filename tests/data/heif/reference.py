"""Reference pixels for tests/data/heif/*: decoded by libheif (PyPI pillow-heif), the decoder
behind most HEIC support. Writes tests/data/heif/reference.json: per file the size after
irot/imir and an 8x8 grid of RGB samples (pixel centres of an 8x8 tiling), or the error.

Run by hand, not in CI:  pip install pillow-heif numpy && python tests/data/heif/reference.py
Files are from pillow-heif's test suite (BSD-3-Clause, LICENSE-pillow-heif.txt)."""
import json, os

import numpy as np
import pillow_heif
from PIL import Image

pillow_heif.register_heif_opener()
here = os.path.dirname(os.path.abspath(__file__))
out = {"decoder": f"libheif {pillow_heif.libheif_version()} via pillow-heif {pillow_heif.__version__}", "files": {}}
for name in sorted(os.listdir(here)):
    if not name.endswith((".heic", ".heif")):
        continue
    try:
        im = Image.open(os.path.join(here, name))
        im.load()
    except Exception as e:  # noqa: BLE001 - the reason is the reference
        out["files"][name] = {"error": str(e)}
        continue
    a = np.asarray(im.convert("RGB"))
    h, w = a.shape[:2]
    ys = [int((i + 0.5) * h / 8) for i in range(8)]
    xs = [int((i + 0.5) * w / 8) for i in range(8)]
    out["files"][name] = {"width": w, "height": h, "samples": [[a[y, x].tolist() for x in xs] for y in ys], "mean": float(a.mean())}
with open(os.path.join(here, "reference.json"), "w") as f:
    json.dump(out, f, indent=1)
print(json.dumps({k: (v.get("error") or (v["width"], v["height"], round(v["mean"], 2))) for k, v in out["files"].items()}, indent=1))

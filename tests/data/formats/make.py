"""Writes the pixel-format fixtures in tests/data/formats/ and reference.json: for every file
the true 8-bit RGB of an 8x8 grid of samples, computed here from the source arrays (not by a
decoder). Run by hand: pip install numpy pillow imagecodecs tifffile && python make.py

A 64x48 pattern: red rises left to right, green top to bottom, blue is a checkerboard of 8 px
squares, so a swapped byte, a wrong scale or a lost channel shows at once."""
import json, os

import imagecodecs
import numpy as np
import tifffile
from PIL import Image

here = os.path.dirname(os.path.abspath(__file__))
W, H = 64, 48
x = np.arange(W)[None, :].repeat(H, 0)
y = np.arange(H)[:, None].repeat(W, 1)
checker = (((x // 8) + (y // 8)) % 2).astype(np.float64)
# 16-bit source, full range
r16 = np.round(x / (W - 1) * 65535).astype(np.uint16)
g16 = np.round(y / (H - 1) * 65535).astype(np.uint16)
b16 = np.round((0.2 + 0.6 * checker) * 65535).astype(np.uint16)
rgb16 = np.stack([r16, g16, b16], -1)
to8 = lambda a, bits: np.round(a.astype(np.float64) * 255 / (2**bits - 1)).astype(np.uint8)
rgb8 = to8(rgb16, 16)
gray16 = r16
ref = {}
ys = [int((i + 0.5) * H / 8) for i in range(8)]
xs = [int((i + 0.5) * W / 8) for i in range(8)]


def note(name, rgb, tolerance, frames=1):
    ref[name] = {"width": rgb.shape[1], "height": rgb.shape[0], "tolerance": tolerance, "samples": [[rgb[yy, xx].tolist() for xx in xs] for yy in ys]}


def save(name, data):
    with open(os.path.join(here, name), "wb") as f:
        f.write(data)


grey = lambda g8: np.stack([g8] * 3, -1)
# JPEG: 16-bit and 12-bit lossless, 12-bit lossy (libjpeg-turbo through imagecodecs)
save("gray16-lossless.jpg", imagecodecs.jpeg8_encode(gray16, lossless=True, bitspersample=16))
note("gray16-lossless.jpg", grey(to8(gray16, 16)), 1)
g12 = (gray16 >> 4).astype(np.uint16)
save("gray12-lossless.jpg", imagecodecs.jpeg8_encode(g12, lossless=True, bitspersample=12))
note("gray12-lossless.jpg", grey(to8(g12, 12)), 1)
save("gray12.jpg", imagecodecs.jpeg8_encode(g12, level=95, bitspersample=12))
note("gray12.jpg", grey(to8(g12, 12)), 6)
# 12-bit DCT JPEG (medical imaging, not cameras): neither Rust JPEG decoder reads it, so it
# must be reported as unsupported, not as corrupt
ref["gray12.jpg"]["unsupported"] = True
# CMYK JPEG (Adobe, inverted as Photoshop writes it) from the 8-bit pattern with K = 0
cmyk = np.concatenate([255 - rgb8, np.zeros((H, W, 1), np.uint8)], -1)
Image.fromarray(cmyk, "CMYK").save(os.path.join(here, "cmyk.jpg"), quality=95)
note("cmyk.jpg", rgb8, 10)
# PNG: 16-bit RGB, 16-bit grey, palette, grey + alpha
save("rgb16.png", imagecodecs.png_encode(rgb16))
note("rgb16.png", rgb8, 1)
save("gray16.png", imagecodecs.png_encode(gray16))
note("gray16.png", grey(to8(gray16, 16)), 1)
pal = Image.fromarray(rgb8).quantize(colors=64, dither=Image.Dither.NONE)
pal.save(os.path.join(here, "palette.png"))
note("palette.png", np.asarray(pal.convert("RGB")), 0)
la = np.stack([to8(gray16, 16), np.full((H, W), 128, np.uint8)], -1)
Image.fromarray(la, "LA").save(os.path.join(here, "gray-alpha.png"))
note("gray-alpha.png", grey(to8(gray16, 16)), 0)
# TIFF: 16-bit RGB and 16-bit grey
tifffile.imwrite(os.path.join(here, "rgb16.tif"), rgb16, photometric="rgb")
note("rgb16.tif", rgb8, 1)
tifffile.imwrite(os.path.join(here, "gray16.tif"), gray16, photometric="minisblack")
note("gray16.tif", grey(to8(gray16, 16)), 1)
# animated GIF and WebP: the first frame is the pattern, the second is plain blue
blue = np.zeros_like(rgb8)
blue[..., 2] = 255
frames = [Image.fromarray(rgb8).quantize(colors=256, dither=Image.Dither.NONE), Image.fromarray(blue).quantize(colors=256)]
frames[0].save(os.path.join(here, "animated.gif"), save_all=True, append_images=frames[1:], duration=100, loop=0)
note("animated.gif", np.asarray(frames[0].convert("RGB")), 0)
Image.fromarray(rgb8).save(os.path.join(here, "animated.webp"), save_all=True, append_images=[Image.fromarray(blue)], lossless=True, duration=100)
note("animated.webp", rgb8, 0)

with open(os.path.join(here, "reference.json"), "w") as f:
    json.dump(ref, f, indent=1)
for n in sorted(ref):
    print(n, os.path.getsize(os.path.join(here, n)), "bytes")

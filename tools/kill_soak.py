"""Kill soak with the real binary (issue 10): index a folder of N photos, `kill -9` it at random
moments R times (during the scan, in the middle of batches, while grouping people), then one
clean run; the catalog must equal a clean run from scratch: same photos, statuses and sizes,
same faces (boxes, scores, embeddings), same people (as groups of faces).

    python tools/kill_soak.py [--photos 1000] [--kills 20] [--bin target/release/facefind]

Photos come from ../shared/faces/lfw-train (FACEFIND_FACES). Standard library only."""
import argparse, os, random, shutil, sqlite3, struct, subprocess, sys, tempfile, time

ap = argparse.ArgumentParser()
ap.add_argument("--photos", type=int, default=1000)
ap.add_argument("--kills", type=int, default=20)
ap.add_argument("--bin", default="target/release/facefind")
ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "facefind-kill-soak"))
ap.add_argument("--seed", type=int, default=7)
a = ap.parse_args()
random.seed(a.seed)
faces = os.environ.get("FACEFIND_FACES", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "faces"))
photos = os.path.join(a.work, "photos")
if not os.path.isdir(photos) or len(os.listdir(photos)) != a.photos:
    shutil.rmtree(photos, ignore_errors=True)
    os.makedirs(photos)
    src = os.path.join(faces, "lfw-train")
    files = sorted(os.path.join(d, f) for d in (os.path.join(src, p) for p in sorted(os.listdir(src))) for f in sorted(os.listdir(d)))
    for f in files[: a.photos]:
        shutil.copy(f, os.path.join(photos, os.path.basename(f)))


def index(cat):
    t = time.time()
    r = subprocess.run([a.bin, "--device", "cpu", "index", photos, "--catalog", cat, "--quiet"], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"index failed: {r.stderr}")
    return time.time() - t


def snapshot(cat):
    db = sqlite3.connect(cat)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    photos = {r[0]: r[1:] for r in db.execute("SELECT path, size, mtime_ns, status, width, height FROM photos")}
    faces = {}
    for path, idx, x, y, w, h, score, emb in db.execute("SELECT p.path, f.idx, f.x, f.y, f.w, f.h, f.score, f.embedding FROM faces f JOIN photos p ON p.id = f.photo_id"):
        faces[(path, idx)] = ((x, y, w, h), score, struct.unpack(f"<{len(emb) // 4}f", emb))
    groups = {}
    for pid, path, idx in db.execute("SELECT fp.person_id, p.path, f.idx FROM face_person fp JOIN faces f ON f.id = fp.face_id JOIN photos p ON p.id = f.photo_id"):
        groups.setdefault(pid, set()).add((path, idx))
    return photos, faces, {frozenset(g) for g in groups.values()}


for f in os.listdir(a.work):
    if f.endswith((".sqlite", ".sqlite-wal", ".sqlite-shm", ".lock")):
        os.remove(os.path.join(a.work, f))
scratch, soak = os.path.join(a.work, "scratch.sqlite"), os.path.join(a.work, "soak.sqlite")
clean_s = index(scratch)
print(f"{a.photos} photos; a clean run from scratch takes {clean_s:.0f} s", flush=True)
finished_early = 0
for k in range(a.kills):
    p = subprocess.Popen([a.bin, "--device", "cpu", "index", photos, "--catalog", soak, "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # early kills hit the scan and the first batches; later ones batches and people grouping
    time.sleep(random.uniform(0.05, clean_s / 3))
    if p.poll() is None:
        p.kill()
    else:
        finished_early += 1
    p.wait()
    n = sqlite3.connect(soak).execute("SELECT count(*) FROM photos").fetchone()[0] if os.path.exists(soak) else 0
    print(f"kill {k + 1}: {n} photos in the catalog", flush=True)
index(soak)
A, B = snapshot(scratch), snapshot(soak)
worst = max((max(abs(x - y) for x, y in zip(A[1][k][2], B[1][k][2])) for k in A[1] if k in B[1]), default=0.0)
same_boxes = all(A[1][k][0] == B[1][k][0] and A[1][k][1] == B[1][k][1] for k in A[1] if k in B[1])
rows = [
    ("photos (path, size, mtime, status, size)", A[0] == B[0], f"{len(A[0])} vs {len(B[0])}"),
    ("faces (photo, index)", A[1].keys() == B[1].keys(), f"{len(A[1])} vs {len(B[1])}"),
    ("boxes and scores", same_boxes, ""),
    ("embeddings", worst <= 1e-6, f"largest difference {worst:.1e}"),
    ("people (groups of faces)", A[2] == B[2], f"{len(A[2])} vs {len(B[2])} groups"),
]
print(f"\n{a.kills} kill -9 ({finished_early} runs had already finished), then one clean run, against a clean run from scratch:\n")
print("| compared | equal | detail |\n|---|---|---|")
for name, ok, detail in rows:
    print(f"| {name} | {'yes' if ok else 'NO'} | {detail} |")
sys.exit(0 if all(r[1] for r in rows) else 1)

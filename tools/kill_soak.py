"""Kill soak with the real binary: index a folder of N photos, then R rounds that each put new
work in place (new photos, edited photos, renamed photos) and `kill -9` the index run while it
works on it — and, every third round, a `people --name` edit killed beside it. Then one clean
run; the catalog must equal a clean run from scratch on the same folder (photos, statuses,
sizes, faces with boxes, scores and embeddings), every person found before the rounds must
still be one person (by face ids, which survive renames and edits), and every name an edit
reported as saved must be there. Says how many kills landed on work in flight.

    python tools/kill_soak.py [--photos 800] [--kills 20] [--bin target/release/facefind]

Photos come from ../shared/faces/lfw-train (FACEFIND_FACES). Standard library only."""
import argparse, os, random, shutil, sqlite3, struct, subprocess, sys, tempfile, time

ap = argparse.ArgumentParser()
ap.add_argument("--photos", type=int, default=800)
ap.add_argument("--kills", type=int, default=20)
ap.add_argument("--new", type=int, default=12, help="photos added before each killed run")
ap.add_argument("--edits", type=int, default=4, help="photos edited before each killed run")
ap.add_argument("--renames", type=int, default=4, help="photos renamed before each killed run")
ap.add_argument("--bin", default="target/release/facefind")
ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "facefind-kill-soak"))
ap.add_argument("--seed", type=int, default=7)
a = ap.parse_args()
random.seed(a.seed)
faces = os.environ.get("FACEFIND_FACES", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "faces"))
src = os.path.join(faces, "lfw-train")
pool = sorted(os.path.join(d, f) for d in (os.path.join(src, p) for p in sorted(os.listdir(src))) for f in sorted(os.listdir(d)))
need = a.photos + a.kills * a.new
if len(pool) < need:
    sys.exit(f"lfw-train has {len(pool)} photos; {need} needed")
shutil.rmtree(a.work, ignore_errors=True)
photos = os.path.join(a.work, "photos")
os.makedirs(photos)
for f in pool[: a.photos]:
    shutil.copy(f, os.path.join(photos, os.path.basename(f)))
reserve = pool[a.photos : need]


def run(*args):
    return subprocess.run([a.bin, "--device", "cpu", *args], capture_output=True, text=True)


def index(cat):
    t = time.time()
    r = run("index", photos, "--catalog", cat, "--quiet")
    if r.returncode != 0:
        sys.exit(f"index failed: {r.stderr}")
    return time.time() - t


def snapshot(cat):
    db = sqlite3.connect(cat)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    photos = {r[0]: r[1:] for r in db.execute("SELECT path, size, status, width, height FROM photos")}
    faces = {}
    for path, idx, x, y, w, h, score, emb in db.execute("SELECT p.path, f.idx, f.x, f.y, f.w, f.h, f.score, f.embedding FROM faces f JOIN photos p ON p.id = f.photo_id"):
        faces[(path, idx)] = ((x, y, w, h), score, struct.unpack(f"<{len(emb) // 4}f", emb))
    groups = {}
    for pid, path, idx in db.execute("SELECT fp.person_id, p.path, f.idx FROM face_person fp JOIN faces f ON f.id = fp.face_id JOIN photos p ON p.id = f.photo_id"):
        groups.setdefault(pid, set()).add((path, idx))
    names = {r[0]: r[1] for r in db.execute("SELECT id, name FROM people WHERE name IS NOT NULL")}
    person_of = dict(db.execute("SELECT face_id, person_id FROM face_person"))
    return photos, faces, {frozenset(g) for g in groups.values()}, names, person_of


def done(cat):
    """How many files of the folder the catalog holds as they are now, and whether that is all
    of them (and nothing else)."""
    on_disk = {os.fsencode(f): os.stat(os.path.join(photos, f)).st_mtime_ns for f in os.listdir(photos)}
    try:
        db = sqlite3.connect(f"file:{cat}?mode=ro", uri=True)
        rows = dict(db.execute("SELECT path, mtime_ns FROM photos"))
        pending = db.execute("SELECT count(*) FROM pending_embed").fetchone()[0]
    except sqlite3.Error:
        return 0, False
    return sum(rows.get(p) == m for p, m in on_disk.items()), rows == on_disk and pending == 0


def edit(path):
    """New bytes, same picture: a JPEG comment segment after SOI (the fingerprint's head changes)."""
    with open(path, "rb") as f:
        data = f.read()
    text = f"facefind kill soak {random.random()}".encode()
    with open(path, "wb") as f:
        f.write(data[:2] + b"\xff\xfe" + struct.pack(">H", len(text) + 2) + text + data[2:])


soak = os.path.join(a.work, "soak.sqlite")
t0 = time.time()
index(soak)
per_photo = (time.time() - t0) / a.photos
print(f"{a.photos} photos indexed in {time.time() - t0:.0f} s ({per_photo * 1000:.0f} ms per photo)", flush=True)
people = [p["id"] for p in __import__("json").loads(run("people", photos, "--catalog", soak, "--json").stdout)["people"]][:5]
before = {}
for face, person in snapshot(soak)[4].items():
    before.setdefault(person, set()).add(face)
# person -> the names it may end with: the last name an edit reported saved, plus the names of
# edits killed after it (a kill lands before or after the commit)
may_be = {p: {None} for p in people}
in_flight = finished = edit_kills = edits_saved = 0
for k in range(a.kills):
    names = sorted(os.listdir(photos))
    for f in reserve[k * a.new : (k + 1) * a.new]:
        shutil.copy(f, os.path.join(photos, os.path.basename(f)))
    for f in random.sample(names, a.edits):
        edit(os.path.join(photos, f))
    for f in random.sample([n for n in names if not n.startswith("renamed-")], a.renames):
        os.rename(os.path.join(photos, f), os.path.join(photos, f"renamed-{k}-{f}"))
    work = a.new + a.edits
    p = subprocess.Popen([a.bin, "--device", "cpu", "index", photos, "--catalog", soak, "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # kill inside the work: wait for the run's first batch (models loaded, folder scanned, the
    # renames recorded, a batch of new or edited photos written), then a random part of what
    # is left; every third round a name edit starts then too, half of them killed at a random
    # moment, half left to finish
    done_before = done(soak)[0]
    t0 = time.time()
    while p.poll() is None and done(soak)[0] <= done_before + a.renames and time.time() - t0 < 60:
        time.sleep(0.005)
    e = None
    if k % 3 == 2 and people:
        who, name = random.choice(people), f"name {k}"
        e = subprocess.Popen([a.bin, "--device", "cpu", "people", photos, "--catalog", soak, "--name", str(who), name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if (k // 3) % 2 == 0:
            time.sleep(random.uniform(0.002, 0.08))  # an edit takes tens of milliseconds
        else:
            e.wait()
        if e.poll() is None:
            e.kill()
            edit_kills += 1
            may_be[who] = may_be[who] | {name}
        elif e.returncode == 0:
            may_be[who] = {name}
            edits_saved += 1
        else:
            sys.exit(f"a name edit failed (exit {e.returncode})")
        e.wait()
    time.sleep(random.uniform(0, work * per_photo * 0.6))
    if p.poll() is None:
        p.kill()
    else:
        finished += 1
    p.wait()
    flying = not done(soak)[1]
    in_flight += flying
    print(f"kill {k + 1}: {'work in flight' if flying else 'nothing left to do'}", flush=True)
index(soak)
scratch = os.path.join(a.work, "scratch.sqlite")
index(scratch)
A, B = snapshot(scratch), snapshot(soak)
worst = max((max(abs(x - y) for x, y in zip(A[1][k][2], B[1][k][2])) for k in A[1] if k in B[1]), default=0.0)
same_boxes = all(A[1][k][0] == B[1][k][0] and A[1][k][1] == B[1][k][1] for k in A[1] if k in B[1])
lost = {p: n for p, n in may_be.items() if B[3].get(p) not in n}
faces_now = set(sqlite3.connect(soak).execute("SELECT id FROM faces").fetchall())
owners = [{B[4].get(f) for f in g if (f,) in faces_now} for g in before.values()]
split = [o for o in owners if len(o) > 1 or None in o]
rows = [
    ("photos (path, size, status, width, height)", A[0] == B[0], f"{len(A[0])} vs {len(B[0])}"),
    ("faces (photo, index)", A[1].keys() == B[1].keys(), f"{len(A[1])} vs {len(B[1])}"),
    ("boxes and scores", same_boxes, ""),
    ("embeddings", worst <= 1e-6, f"largest difference {worst:.1e}"),
    ("people found before the rounds, still one person each", not split, f"{len(before)} people, {len(split)} split or emptied"),
    ("names: the last saved, or a killed edit's", not lost and edits_saved > 0, f"{edits_saved} edits saved, {edit_kills} killed, {len(lost)} people with another name"),
]
print(f"\n{a.kills} kill -9 of index runs, each after {a.new} new, {a.edits} edited and {a.renames} renamed photos:")
print(f"{in_flight} landed on work in flight, {finished} runs had finished; {edit_kills} people edits killed beside them.")
print("Then one clean run, against a clean run from scratch:\n")
print("| compared | equal | detail |\n|---|---|---|")
for name, ok, detail in rows:
    print(f"| {name} | {'yes' if ok else 'NO'} | {detail} |")
sys.exit(0 if all(r[1] for r in rows) else 1)

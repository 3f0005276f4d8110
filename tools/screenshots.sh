#!/usr/bin/env bash
# The app in a real window under Xvfb (software OpenGL): opens ../shared/faces/album, waits for
# indexing, runs a query, opens the inspector, and saves screenshots.
#   tools/screenshots.sh [OUT_DIR]      (default: target/screenshots)
# Needs: apt-get install -y xvfb xauth libxkbcommon-x11-0 libgl1-mesa-dri libegl-mesa0 imagemagick xdotool
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-target/screenshots}
FACES=${FACEFIND_FACES:-$(pwd)/../shared/faces}
mkdir -p "$OUT"
cargo build --release --quiet
BIN=$(pwd)/target/release/facefind

WORK=$(mktemp -d)
trap 'kill $APP $XVFB 2>/dev/null || true; rm -rf "$WORK"' EXIT
# Fresh app state (no saved prefs), a private catalog.
export XDG_DATA_HOME=$WORK/data XDG_CONFIG_HOME=$WORK/config XDG_CACHE_HOME=$WORK/cache
export DISPLAY=:97 LIBGL_ALWAYS_SOFTWARE=1
Xvfb $DISPLAY -screen 0 1600x1000x24 >/dev/null 2>&1 &
XVFB=$!
sleep 2

shot() { sleep "${2:-1}"; /usr/bin/import -window root "$OUT/$1.png"; echo "saved $OUT/$1.png"; }
window() { xdotool search --name '^facefind$' | head -1; }

# 1. Indexing the album from scratch.
"$BIN" "$FACES/album" --catalog "$WORK/catalog.sqlite" &
APP=$!
for _ in $(seq 60); do [ -n "$(window)" ] && break; sleep 0.5; done
W=$(window)
xdotool windowsize "$W" 1600 1000 windowmove "$W" 0 0
shot 1-indexing 4
# Wait for the index to finish (the catalog stops growing), then the album.
prev=-1
for _ in $(seq 120); do
  n=$(python3 -c "import sqlite3,sys; print(sqlite3.connect('file:$WORK/catalog.sqlite?mode=ro', uri=True).execute('select count(*) from photos').fetchone()[0])" 2>/dev/null || echo 0)
  [ "$n" = "$prev" ] && [ "$n" -gt 100 ] && break
  prev=$n; sleep 2
done
shot 2-album 2
kill $APP; wait $APP 2>/dev/null || true

# 2. A query from a photo of a person who appears several times; threshold at its default.
"$BIN" "$FACES/album" --catalog "$WORK/catalog.sqlite" --query "$FACES/album/deepface/img1.jpg" &
APP=$!
for _ in $(seq 60); do [ -n "$(window)" ] && break; sleep 0.5; done
W=$(window)
xdotool windowsize "$W" 1600 1000 windowmove "$W" 0 0
shot 3-results 6
# 3. The inspector on the first result (first cell of the grid, right of the side panel).
xdotool mousemove 420 170 click 1
shot 4-inspector 3
kill $APP; wait $APP 2>/dev/null || true

# 4. The People view (the top bar's People button), then the first person.
"$BIN" "$FACES/album" --catalog "$WORK/catalog.sqlite" &
APP=$!
for _ in $(seq 60); do [ -n "$(window)" ] && break; sleep 0.5; done
W=$(window)
xdotool windowsize "$W" 1600 1000 windowmove "$W" 0 0
sleep 3
xdotool mousemove ${PEOPLE_X:-393} ${PEOPLE_Y:-16} click 1
shot 5-people 3
xdotool mousemove 70 ${FIRST_PERSON_Y:-190} click 1
shot 6-person 4
kill $APP; wait $APP 2>/dev/null || true

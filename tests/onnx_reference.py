"""Random-weight ONNX embedders and what onnxruntime makes of them, for facefind's parity tests.

Two small networks with the layer kinds of real face embedders, seeded random weights and
random batch-norm statistics (so a folding mistake shows): an iresnet-style net (insightface's
ArcFace backbones: BN, 3x3 convs, PReLU, residual adds with strided 1x1 shortcuts, BN2d ->
flatten -> Linear -> BN1d) and a MobileFaceNet-style net (depthwise convs, a global depthwise
conv, Linear, BN1d). Each is exported to ONNX (`tests/data/onnx/*.onnx`) and run by onnxruntime
on images made from a formula the Rust test repeats; the outputs go to
`tests/data/onnx/reference.json`. Needs torch, onnx, onnxruntime, numpy:
    python3 tests/onnx_reference.py
With `--iresnet50 OUT.onnx` it writes an iresnet-50-sized network instead (insightface's r50:
widths 64-512, blocks 3-4-14-3, 512-d; about 170 MB, not committed) and `OUT.json` with
onnxruntime's embeddings of the same images, for `tools/bench_onnx.sh`.
"""
import argparse
import json
import os

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "onnx")


def randomise(net, seed):
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.weight.data = 0.5 + torch.rand(m.weight.shape, generator=g)
            m.bias.data = 0.2 * torch.randn(m.bias.shape, generator=g)
            m.running_mean.data = 0.2 * torch.randn(m.running_mean.shape, generator=g)
            m.running_var.data = 0.5 + torch.rand(m.running_var.shape, generator=g)
        elif isinstance(m, nn.PReLU):
            m.weight.data = 0.1 + 0.3 * torch.rand(m.weight.shape, generator=g)
        elif isinstance(m, (nn.Conv2d, nn.Linear)):
            fan_in = m.weight[0].numel()
            m.weight.data = torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5
            if m.bias is not None:
                m.bias.data = 0.1 * torch.randn(m.bias.shape, generator=g)
    return net.eval()


class IBlock(nn.Module):
    """insightface's IBasicBlock: BN, conv3x3, BN, PReLU, conv3x3 (stride), BN, + shortcut."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.prelu = nn.PReLU(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return y + (self.down(x) if self.down is not None else x)


class IResNet(nn.Module):
    def __init__(self, widths=(8, 16, 16, 32), blocks=(1, 2, 1, 1), dim=64):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.prelu = nn.PReLU(widths[0])
        layers, cin = [], widths[0]
        for w, n in zip(widths, blocks):
            for i in range(n):
                layers.append(IBlock(cin, w, 2 if i == 0 else 1))
                cin = w
        self.layers = nn.Sequential(*layers)
        self.bn2 = nn.BatchNorm2d(cin)
        self.dropout = nn.Dropout(0.0)
        self.fc = nn.Linear(cin * 7 * 7, dim)
        self.features = nn.BatchNorm1d(dim)

    def forward(self, x):
        x = self.layers(self.prelu(self.bn1(self.conv1(x))))
        x = self.dropout(torch.flatten(self.bn2(x), 1))
        return self.features(self.fc(x))


def conv_bn(cin, cout, k, s, p, groups=1, act=True):
    layers = [nn.Conv2d(cin, cout, k, s, p, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.PReLU(cout))
    return nn.Sequential(*layers)


class Bottleneck(nn.Module):
    def __init__(self, c, expand, stride):
        super().__init__()
        e = c * expand
        self.body = nn.Sequential(conv_bn(c, e, 1, 1, 0), conv_bn(e, e, 3, stride, 1, groups=e), conv_bn(e, c, 1, 1, 0, act=False))
        self.residual = stride == 1

    def forward(self, x):
        y = self.body(x)
        return x + y if self.residual else y


class MobileFaceNet(nn.Module):
    def __init__(self, c=16, dim=64):
        super().__init__()
        self.head = nn.Sequential(conv_bn(3, c, 3, 2, 1), conv_bn(c, c, 3, 1, 1, groups=c))
        self.blocks = nn.Sequential(Bottleneck(c, 2, 2), Bottleneck(c, 2, 1), Bottleneck(c, 2, 2), Bottleneck(c, 2, 2))
        self.tail = conv_bn(c, 2 * c, 1, 1, 0)
        self.gdc = conv_bn(2 * c, 2 * c, 7, 1, 0, groups=2 * c, act=False)
        self.fc = nn.Linear(2 * c, dim, bias=False)
        self.bn = nn.BatchNorm1d(dim)

    def forward(self, x):
        x = self.gdc(self.tail(self.blocks(self.head(x))))
        return self.bn(self.fc(torch.flatten(x, 1)))


def images(n, size=112):
    """What the Rust test makes too: pixel (y, x, c) of image k is ((x*7 + y*13 + c*29 + k*31) % 256)."""
    k, y, x, c = np.meshgrid(np.arange(n), np.arange(size), np.arange(size), np.arange(3), indexing="ij")
    return ((x * 7 + y * 13 + c * 29 + k * 31) % 256).astype(np.float32)


class IResNet50(IResNet):
    """insightface's iresnet50 layout: a stride-1 stem at 112 px, then four stages from 56 px."""

    def __init__(self):
        super().__init__(widths=(64, 128, 256, 512), blocks=(3, 4, 14, 3), dim=512)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iresnet50", help="write an iresnet-50-sized network here (and its embeddings beside it)")
    args = ap.parse_args()
    raw = images(3)
    x = ((raw - 127.5) / 127.5).transpose(0, 3, 1, 2).copy()
    out = {"images": "pixel (y, x, c) of image k = (x*7 + y*13 + c*29 + k*31) % 256; input (v - 127.5) / 127.5, NCHW RGB"}
    if args.iresnet50:
        nets = [(os.path.splitext(args.iresnet50)[0], randomise(IResNet50(), 3))]
    else:
        os.makedirs(HERE, exist_ok=True)
        nets = [(os.path.join(HERE, name), net) for name, net in [("iresnet", randomise(IResNet(), 1)), ("mobilefacenet", randomise(MobileFaceNet(), 2))]]
    for stem, net in nets:
        name = os.path.basename(stem)
        path = stem + ".onnx"
        torch.onnx.export(net, torch.from_numpy(x[:1]), path, input_names=["input"], output_names=["embedding"],
                          dynamic_axes={"input": {0: "N"}, "embedding": {0: "N"}}, opset_version=13, dynamo=False)
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        got = sess.run(None, {"input": x})[0]
        with torch.no_grad():
            want = net(torch.from_numpy(x)).numpy()
        assert np.abs(got - want).max() < 1e-3 * (1 + np.abs(want).max()), (name, np.abs(got - want).max())
        out[name] = {"file": f"{name}.onnx", "bytes": os.path.getsize(path), "embeddings": got.tolist()}
    where = os.path.splitext(args.iresnet50)[0] + ".json" if args.iresnet50 else os.path.join(HERE, "reference.json")
    with open(where, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Reference numbers for src/train/heads.rs and loss.rs: the seed's heads (arcface-pytorch
models/metrics.py: AddMarginProduct, ArcMarginProduct, SphereProduct; insightface's combined
margin) and losses, in PyTorch float64, on fixed inputs. Writes tests/data/heads.json.

Run by hand (not in CI):  python3 tests/heads_reference.py   (PyPI torch, CPU)

Inputs are built so that every branch is taken: sample 0's label centre is nearly opposite its
feature (cos < cos(pi - m): ArcFace's th fall-back; SphereFace k = 3), sample 1's is at cos < 0
(easy_margin keeps cos), the others are random."""
import json, math, os
import torch
import torch.nn.functional as F

torch.manual_seed(0)
N, D, C = 6, 8, 5
x = torch.randn(N, D, dtype=torch.float64)
W = torch.randn(C, D, dtype=torch.float64)
labels = torch.tensor([0, 1, 2, 3, 4, 1])
W[0] = -x[0] * 1.3 + 0.05 * torch.randn(D, dtype=torch.float64)          # cos ~ -0.99
W[1] = -0.3 * x[1] / x[1].norm() * W[1].norm() + 0.9 * W[1]              # cos < 0
b = torch.randn(C, dtype=torch.float64) * 0.1


class ArcMarginProduct:  # metrics.py
    def __init__(self, s=30.0, m=0.50, easy_margin=False):
        self.s, self.m, self.easy_margin = s, m, easy_margin
        self.cos_m, self.sin_m = math.cos(m), math.sin(m)
        self.th, self.mm = math.cos(math.pi - m), math.sin(math.pi - m) * m

    def __call__(self, input, weight, label):
        cosine = F.linear(F.normalize(input), F.normalize(weight))
        sine = torch.sqrt((1.0 - torch.pow(cosine, 2)).clamp(0, 1))
        phi = cosine * self.cos_m - sine * self.sin_m
        if self.easy_margin:
            phi = torch.where(cosine > 0, phi, cosine)
        else:
            phi = torch.where(cosine > self.th, phi, cosine - self.mm)
        one_hot = torch.zeros(cosine.size(), dtype=cosine.dtype)
        one_hot.scatter_(1, label.view(-1, 1).long(), 1)
        return ((one_hot * phi) + ((1.0 - one_hot) * cosine)) * self.s


class AddMarginProduct:  # metrics.py
    def __init__(self, s=30.0, m=0.35):
        self.s, self.m = s, m

    def __call__(self, input, weight, label):
        cosine = F.linear(F.normalize(input), F.normalize(weight))
        phi = cosine - self.m
        one_hot = torch.zeros(cosine.size(), dtype=cosine.dtype)
        one_hot.scatter_(1, label.view(-1, 1).long(), 1)
        return ((one_hot * phi) + ((1.0 - one_hot) * cosine)) * self.s


class SphereProduct:  # metrics.py (first forward: iter = 1)
    def __init__(self, m=4):
        self.m, self.base, self.gamma, self.power, self.LambdaMin, self.iter = m, 1000.0, 0.12, 1, 5.0, 0
        self.mlambda = [lambda x: x ** 0, lambda x: x ** 1, lambda x: 2 * x ** 2 - 1, lambda x: 4 * x ** 3 - 3 * x,
                        lambda x: 8 * x ** 4 - 8 * x ** 2 + 1, lambda x: 16 * x ** 5 - 20 * x ** 3 + 5 * x]

    def __call__(self, input, weight, label):
        self.iter += 1
        self.lamb = max(self.LambdaMin, self.base * (1 + self.gamma * self.iter) ** (-1 * self.power))
        cos_theta = F.linear(F.normalize(input), F.normalize(weight))
        cos_theta = cos_theta.clamp(-1, 1)
        cos_m_theta = self.mlambda[self.m](cos_theta)
        theta = cos_theta.data.acos()
        k = (self.m * theta / 3.14159265).floor()
        phi_theta = ((-1.0) ** k) * cos_m_theta - 2 * k
        NormOfFeature = torch.norm(input, 2, 1)
        one_hot = torch.zeros(cos_theta.size(), dtype=cos_theta.dtype)
        one_hot.scatter_(1, label.view(-1, 1), 1)
        output = (one_hot * (phi_theta - cos_theta) / (1 + self.lamb)) + cos_theta
        output *= NormOfFeature.view(-1, 1)
        return output


class Combined:  # insightface: s * (cos(m1 * theta + m2) - m3) for the label, with acos
    def __init__(self, s, m1, m2, m3):
        self.s, self.m1, self.m2, self.m3 = s, m1, m2, m3

    def __call__(self, input, weight, label):
        cosine = F.linear(F.normalize(input), F.normalize(weight))
        theta = torch.acos(cosine.clamp(-1, 1))
        target = torch.cos(self.m1 * theta + self.m2) - self.m3
        one_hot = F.one_hot(label, cosine.shape[1]).to(cosine.dtype)
        return (one_hot * target + (1 - one_hot) * cosine) * self.s


def focal_per_sample(logits, y, gamma=2.0):
    ce = F.cross_entropy(logits, y, reduction='none')
    p = torch.exp(-ce)
    return ((1 - p) ** gamma * ce).mean()


heads = {
    "softmax": (None, {"kind": "softmax"}),
    "sphereface": (SphereProduct(4), {"kind": "sphereface", "m": 4}),
    "cosface": (AddMarginProduct(30.0, 0.35), {"kind": "cosface", "s": 30.0, "m": 0.35}),
    "arcface": (ArcMarginProduct(30.0, 0.5, False), {"kind": "arcface", "s": 30.0, "m": 0.5, "easy_margin": False}),
    "arcface_easy": (ArcMarginProduct(30.0, 0.5, True), {"kind": "arcface", "s": 30.0, "m": 0.5, "easy_margin": True}),
    "combined": (Combined(64.0, 1, 0.3, 0.2), {"kind": "combined", "s": 64.0, "m1": 1, "m2": 0.3, "m3": 0.2}),
    "combined_m1_2": (Combined(64.0, 2, 0.1, 0.1), {"kind": "combined", "s": 64.0, "m1": 2, "m2": 0.1, "m3": 0.1}),
}
out = {"x": x.flatten().tolist(), "w": W.flatten().tolist(), "bias": b.tolist(), "labels": labels.tolist(),
       "n": N, "d": D, "c": C, "heads": {}}
cos = F.linear(F.normalize(x), F.normalize(W))
out["label_cos"] = [cos[i, labels[i]].item() for i in range(N)]
for name, (head, cfg) in heads.items():
    for loss_name in ["ce", "focal"]:
        xv = x.clone().requires_grad_(True)
        Wv = W.clone().requires_grad_(True)
        bv = b.clone().requires_grad_(True)
        if head is None:
            logits = F.linear(xv, Wv, bv)
        else:
            if isinstance(head, SphereProduct):
                head.iter = 0
            logits = head(xv, Wv, labels)
        loss = F.cross_entropy(logits, labels) if loss_name == "ce" else focal_per_sample(logits, labels)
        loss.backward()
        out["heads"][f"{name}/{loss_name}"] = {
            "config": cfg, "loss": loss_name, "logits": logits.detach().flatten().tolist(), "value": loss.item(),
            "dx": xv.grad.flatten().tolist(), "dw": Wv.grad.flatten().tolist(),
            "db": bv.grad.tolist() if head is None else None,
        }
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "heads.json")
with open(path, "w") as f:
    json.dump(out, f, indent=1)
print("label cosines:", [round(c, 3) for c in out["label_cos"]], "->", path)

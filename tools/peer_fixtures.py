"""Write tests/fixtures/peers/*.json: torchvision's tensor names and shapes per family.

The names and shapes are derived here from torchvision's model source (torchvision 0.29,
``torchvision/models/{resnet,vgg,alexnet,squeezenet,mobilenetv2,shufflenetv2,densenet,
efficientnet}.py``),
written out by the same loops as its constructors, so the tests need no torchvision. They were
NOT generated from a live torchvision: ``tools/peer_parity.py --write-fixtures`` regenerates
them from the real models (and checks output parity) where torchvision is installed.

    python tools/peer_fixtures.py
"""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "peers"


def conv(name, cout, cin, k, bias=False):
    out = [(f"{name}.weight", [cout, cin, k, k])]
    return out + [(f"{name}.bias", [cout])] if bias else out


def bn(name, c):
    return [(f"{name}.{p}", [c]) for p in ("weight", "bias", "running_mean", "running_var")] \
        + [(f"{name}.num_batches_tracked", [])]


def linear(name, cout, cin):
    return [(f"{name}.weight", [cout, cin]), (f"{name}.bias", [cout])]


def resnet(blocks, bottleneck, nc=1000, groups=1, base_width=64):
    t = conv("conv1", 64, 3, 7) + bn("bn1", 64)
    cin, exp = 64, 4 if bottleneck else 1
    for li, (n, w) in enumerate(zip(blocks, (64, 128, 256, 512)), 1):
        for b in range(n):
            p = f"layer{li}.{b}"
            stride = 2 if b == 0 and li > 1 else 1
            if bottleneck:
                mid = int(w * base_width / 64) * groups
                t += conv(f"{p}.conv1", mid, cin, 1) + bn(f"{p}.bn1", mid)
                t += conv(f"{p}.conv2", mid, mid // groups, 3) + bn(f"{p}.bn2", mid)
                t += conv(f"{p}.conv3", w * exp, mid, 1) + bn(f"{p}.bn3", w * exp)
            else:
                t += conv(f"{p}.conv1", w, cin, 3) + bn(f"{p}.bn1", w)
                t += conv(f"{p}.conv2", w, w, 3) + bn(f"{p}.bn2", w)
            if stride != 1 or cin != w * exp:
                t += conv(f"{p}.downsample.0", w * exp, cin, 1) + bn(f"{p}.downsample.1", w * exp)
            cin = w * exp
    return t + linear("fc", nc, 512 * exp)


def vgg(cfg, batch_norm, nc=1000):
    t, i, cin = [], 0, 3
    for v in cfg:
        if v == "M":
            i += 1
            continue
        t += conv(f"features.{i}", v, cin, 3, bias=True)
        if batch_norm:
            t += bn(f"features.{i + 1}", v)
        i += 3 if batch_norm else 2
        cin = v
    return t + linear("classifier.0", 4096, 512 * 7 * 7) + linear("classifier.3", 4096, 4096) \
        + linear("classifier.6", nc, 4096)


def alexnet(nc=1000):
    t = conv("features.0", 64, 3, 11, True) + conv("features.3", 192, 64, 5, True)
    t += conv("features.6", 384, 192, 3, True) + conv("features.8", 256, 384, 3, True)
    t += conv("features.10", 256, 256, 3, True)
    return t + linear("classifier.1", 4096, 9216) + linear("classifier.4", 4096, 4096) \
        + linear("classifier.6", nc, 4096)


def squeezenet1_1(nc=1000):
    t = conv("features.0", 64, 3, 3, True)
    fires = {3: (64, 16, 64), 4: (128, 16, 64), 6: (128, 32, 128), 7: (256, 32, 128),
             9: (256, 48, 192), 10: (384, 48, 192), 11: (384, 64, 256), 12: (512, 64, 256)}
    for i, (cin, s, e) in fires.items():
        t += conv(f"features.{i}.squeeze", s, cin, 1, True)
        t += conv(f"features.{i}.expand1x1", e, s, 1, True)
        t += conv(f"features.{i}.expand3x3", e, s, 3, True)
    return t + conv("classifier.1", nc, 512, 1, True)


def _divisible(v, d=8):
    new = max(d, int(v + d / 2) // d * d)
    return new + d if new < 0.9 * v else new


def mobilenet_v2(width_mult=1.0, nc=1000):
    setting = [(1, 16, 1), (6, 24, 2), (6, 32, 3), (6, 64, 4), (6, 96, 3), (6, 160, 3),
               (6, 320, 1)]
    cin = _divisible(32 * width_mult)
    last = _divisible(1280 * max(1.0, width_mult))
    t = conv("features.0.0", cin, 3, 3) + bn("features.0.1", cin)
    i = 1
    for e, c, n in setting:
        cout = _divisible(c * width_mult)
        for _ in range(n):
            p, hidden, j = f"features.{i}.conv", cin * e, 0
            if e != 1:
                t += conv(f"{p}.0.0", hidden, cin, 1) + bn(f"{p}.0.1", hidden)
                j = 1
            t += [(f"{p}.{j}.0.weight", [hidden, 1, 3, 3])] + bn(f"{p}.{j}.1", hidden)
            t += conv(f"{p}.{j + 1}", cout, hidden, 1) + bn(f"{p}.{j + 2}", cout)
            cin, i = cout, i + 1
    t += conv(f"features.{i}.0", last, cin, 1) + bn(f"features.{i}.1", last)
    return t + linear("classifier.1", nc, last)


def shufflenet_v2(widths=(24, 48, 96, 192, 1024), repeats=(4, 8, 4), nc=1000):
    t = conv("conv1.0", widths[0], 3, 3) + bn("conv1.1", widths[0])
    cin = widths[0]
    for s, (n, cout) in enumerate(zip(repeats, widths[1:4]), 2):
        bf = cout // 2
        for b in range(n):
            p = f"stage{s}.{b}"
            if b == 0:
                t += [(f"{p}.branch1.0.weight", [cin, 1, 3, 3])] + bn(f"{p}.branch1.1", cin)
                t += conv(f"{p}.branch1.2", bf, cin, 1) + bn(f"{p}.branch1.3", bf)
            t += conv(f"{p}.branch2.0", bf, cin if b == 0 else bf, 1) + bn(f"{p}.branch2.1", bf)
            t += [(f"{p}.branch2.3.weight", [bf, 1, 3, 3])] + bn(f"{p}.branch2.4", bf)
            t += conv(f"{p}.branch2.5", bf, bf, 1) + bn(f"{p}.branch2.6", bf)
        cin = cout
    t += conv("conv5.0", widths[4], cin, 1) + bn("conv5.1", widths[4])
    return t + linear("fc", nc, widths[4])


def densenet(blocks=(6, 12, 24, 16), growth=32, init=64, bn_size=4, nc=1000):
    t = conv("features.conv0", init, 3, 7) + bn("features.norm0", init)
    c = init
    for i, n in enumerate(blocks, 1):
        for j in range(1, n + 1):
            p = f"features.denseblock{i}.denselayer{j}"
            t += bn(f"{p}.norm1", c) + conv(f"{p}.conv1", bn_size * growth, c, 1)
            mid = bn_size * growth
            t += bn(f"{p}.norm2", mid) + conv(f"{p}.conv2", growth, mid, 3)
            c += growth
        if i != len(blocks):
            t += bn(f"features.transition{i}.norm", c) + conv(f"features.transition{i}.conv",
                                                              c // 2, c, 1)
            c //= 2
    return t + bn("features.norm5", c) + linear("classifier", nc, c)


def efficientnet_b0(nc=1000):
    # (expand ratio, kernel, out channels, repeats): torchvision's _efficientnet_conf, width 1
    setting = [(1, 3, 16, 1), (6, 3, 24, 2), (6, 5, 40, 2), (6, 3, 80, 3), (6, 5, 112, 3),
               (6, 5, 192, 4), (6, 3, 320, 1)]
    t = conv("features.0.0", 32, 3, 3) + bn("features.0.1", 32)
    cin = 32
    for s, (e, k, cout, n) in enumerate(setting, 1):
        for j in range(n):
            p, hidden, b = f"features.{s}.{j}.block", cin * e, 0
            if e != 1:
                t += conv(f"{p}.0.0", hidden, cin, 1) + bn(f"{p}.0.1", hidden)
                b = 1
            t += [(f"{p}.{b}.0.weight", [hidden, 1, k, k])] + bn(f"{p}.{b}.1", hidden)
            sq = max(1, cin // 4)
            t += conv(f"{p}.{b + 1}.fc1", sq, hidden, 1, True)
            t += conv(f"{p}.{b + 1}.fc2", hidden, sq, 1, True)
            t += conv(f"{p}.{b + 2}.0", cout, hidden, 1) + bn(f"{p}.{b + 2}.1", cout)
            cin = cout
    t += conv("features.8.0", 1280, cin, 1) + bn("features.8.1", 1280)
    return t + linear("classifier.1", nc, 1280)


# cnnlab model name -> (torchvision constructor, its names and shapes)
PEERS = {
    "resnet18": ("resnet18", lambda: resnet((2, 2, 2, 2), False)),
    "resnet50": ("resnet50", lambda: resnet((3, 4, 6, 3), True)),
    "resnext50_32x4d": ("resnext50_32x4d",
                        lambda: resnet((3, 4, 6, 3), True, groups=32, base_width=4)),
    "efficientnet_b0": ("efficientnet_b0", efficientnet_b0),
    "vgg11_bn": ("vgg11_bn", lambda: vgg([64, "M", 128, "M", 256, 256, "M", 512, 512, "M",
                                          512, 512, "M"], True)),
    "alexnet": ("alexnet", alexnet),
    "squeezenet1_1": ("squeezenet1_1", squeezenet1_1),
    "mobilenet_v2": ("mobilenet_v2", mobilenet_v2),
    "shufflenet_v2_x0_5": ("shufflenet_v2_x0_5", shufflenet_v2),
    "densenet121": ("densenet121", densenet),
}


def write(name: str, tensors) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"torchvision_{name}.json"
    peer = PEERS[name][0]
    path.write_text(json.dumps({"model": name, "peer": f"torchvision.models.{peer}",
                                "tensors": [[k, list(s)] for k, s in tensors]}) + "\n")
    return path


if __name__ == "__main__":
    for name, (_, make) in PEERS.items():
        print(write(name, make()))

"""Output parity of cnnlab models loaded with a peer's weights, against the live peers.

NOT RUN in cnnlab's CI or on the development machine (torchvision needs its own torch build).
Run it in a venv with the peers::

    pip install torch==2.14.1 torchvision==0.29.1 timm safetensors
    PYTHONPATH=. python tools/peer_parity.py [--write-fixtures] [--only resnet18,...]

For each pair below: build the peer with random weights and random BatchNorm statistics,
save its state dict as .pth and as safetensors (whose sorted names exercise the order rule of
:mod:`cnnlab.pretrained`), load each with
``cnnlab.create_model(name, release=..., pretrained=file)`` and compare outputs on a seeded
random input in eval mode. Prints a table; exits 1 if any pair's max relative difference
(max |ours − peer| / max |peer|) is above 1e-5.
``--write-fixtures`` rewrites tests/fixtures/peers/torchvision_*.json from the live models.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

# (cnnlab name, cnnlab kwargs, release, peer library, peer name, peer kwargs, input size)
PAIRS = [
    ("alexnet", {}, "paper", "torchvision", "alexnet", {}, 224),
    ("vgg11_bn", {}, "paper", "torchvision", "vgg11_bn", {}, 224),
    ("resnet18", {}, "paper", "torchvision", "resnet18", {}, 224),
    ("resnet50", {}, "paper", "torchvision", "resnet50", {}, 224),
    ("squeezenet1_1", {}, "paper", "torchvision", "squeezenet1_1", {}, 224),
    ("mobilenet_v2", {}, "paper", "torchvision", "mobilenet_v2", {}, 224),
    ("shufflenet_v2_x0_5", {}, "paper", "torchvision", "shufflenet_v2_x0_5", {}, 224),
    ("densenet121", {}, "paper", "torchvision", "densenet121", {}, 224),
    ("inception_v3", {}, "torchvision", "torchvision", "inception_v3",
     {"aux_logits": False, "init_weights": True}, 299),
    ("efficientnet_b0", {}, "torchvision", "torchvision", "efficientnet_b0", {}, 224),
    ("efficientnet_b5", {}, "torchvision", "torchvision", "efficientnet_b5", {}, 456),
    ("efficientnet_b0", {}, "tf", "timm", "tf_efficientnet_b0", {}, 224),
    ("mobilenet_v1", {}, "tf", "timm", "mobilenetv1_100", {}, 224),
    ("xception", {}, "tf", "timm", "legacy_xception", {}, 299),
    ("nasnet_a_large", {}, "tf", "timm", "nasnetalarge", {}, 331),
]
FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "peers"


def peer_model(lib: str, name: str, kwargs: dict):
    if lib == "torchvision":
        import torchvision

        return getattr(torchvision.models, name)(weights=None, **kwargs)
    import timm

    return timm.create_model(name, pretrained=False, **kwargs)


def randomise(model: torch.nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)


def check(row, tmp: Path) -> tuple[str, float, str]:
    from safetensors.torch import save_file

    import cnnlab

    name, kwargs, release, lib, peer_name, peer_kwargs, size = row
    torch.manual_seed(0)
    peer = peer_model(lib, peer_name, peer_kwargs).eval()
    randomise(peer)
    state = {k: v.contiguous() for k, v in peer.state_dict().items()}
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = peer(x)
    worst, why = 0.0, ""
    # .pth keeps the registration order; safetensors sorts names (the order rule restores it)
    for path in (tmp / f"{peer_name}.pth", tmp / f"{peer_name}.safetensors"):
        if path.suffix == ".pth":
            torch.save(state, path)
        else:
            save_file(state, str(path))
        try:
            ours = cnnlab.create_model(name, release=release, pretrained=path, **kwargs).eval()
        except ValueError as e:
            return "no fit", float("inf"), f"{path.suffix}: {e}"
        with torch.no_grad():
            rel = float((ours(x) - want).abs().max() / want.abs().max())
        if rel > worst:
            worst, why = rel, path.suffix
    return ("ok" if worst <= 1e-5 else "DIFFERS"), worst, why if worst > 1e-5 else ""


def write_fixture(row) -> None:
    name, _, _, lib, peer_name, peer_kwargs, _ = row
    if lib != "torchvision":
        return
    sd = peer_model(lib, peer_name, peer_kwargs).state_dict()
    FIXTURES.mkdir(parents=True, exist_ok=True)
    (FIXTURES / f"torchvision_{name}.json").write_text(json.dumps(
        {"model": name, "peer": f"torchvision.models.{peer_name}",
         "tensors": [[k, list(v.shape)] for k, v in sd.items()]}) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write-fixtures", action="store_true")
    ap.add_argument("--only", default="", help="comma-separated cnnlab names")
    args = ap.parse_args(argv)
    only = set(filter(None, args.only.split(",")))
    rows = [r for r in PAIRS if not only or r[0] in only]
    bad = 0
    print(f"{'cnnlab':<22}{'release':<13}{'peer':<34}{'status':<9}max rel diff")
    with tempfile.TemporaryDirectory() as tmp:
        for row in rows:
            if args.write_fixtures:
                write_fixture(row)
            status, rel, why = check(row, Path(tmp))
            bad += status != "ok"
            print(f"{row[0]:<22}{row[2]:<13}{row[3] + '.' + row[4]:<34}{status:<9}{rel:.2e}"
                  + (f"  {why}" if why else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

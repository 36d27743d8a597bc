"""Output parity of cnnlab models loaded with a peer's weights, against the live peers.

Not run in cnnlab's CI (torchvision needs its own torch build); run by hand in a venv with
the peers (its table is in docs/released-weights.md)::

    pip install torch torchvision timm safetensors    # e.g. 2.14.1 / 0.29.1 / 1.0.31
    PYTHONPATH=. python tools/peer_parity.py [--only resnet18,...] [--peers timm.resnet50]
    PYTHONPATH=. python tools/peer_parity.py --write-fixtures --write-checkpoints --no-check

For each pair below: build the peer with seeded random weights and random BatchNorm
statistics and affine parameters, save its state dict as .pth and as safetensors (whose
sorted names exercise the name and order rules of :mod:`cnnlab.pretrained`), load each with
``cnnlab.create_model(name, release=..., pretrained=file)`` and compare outputs on a seeded
random input in eval mode. Prints a table; exits 1 if any pair's max relative difference
(max |ours − peer| / max |peer|) is above 1e-5.
``--write-fixtures`` rewrites tests/fixtures/peers/{torchvision,timm}_*.json.gz (each peer's
tensor names and shapes) from the live models; ``--write-checkpoints`` the seeded small
peer checkpoints under tests/fixtures/peers/checkpoints/.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import tempfile
from pathlib import Path

import torch

# (cnnlab name, cnnlab kwargs, release, peer library, peer name, peer kwargs, input size)
TV, TIMM = "torchvision", "timm"
_NO_AUX = {"aux_logits": False, "init_weights": True}
PAIRS = [
    ("alexnet", {}, "paper", TV, "alexnet", {}, 224),
    *[(n, {}, "paper", TV, n, {}, 224) for n in (
        "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn")],
    ("googlenet", {}, "paper", TV, "googlenet", {**_NO_AUX, "transform_input": False}, 224),
    ("inception_v3", {}, "torchvision", TV, "inception_v3", _NO_AUX, 299),
    ("inception_v3", {}, "torchvision", TIMM, "inception_v3", {}, 299),
    ("inception_resnet_v2", {}, "paper", TIMM, "inception_resnet_v2", {}, 299),
    *[(n, {}, "torchvision", TV, n, {}, 224) for n in (
        "resnet18", "resnet34", "resnet50", "resnet101", "resnet152")],
    *[(n, {}, "paper", TV, n, {}, 224) for n in ("resnext50_32x4d", "resnext101_64x4d")],
    ("resnet50", {}, "torchvision", TIMM, "resnet50", {}, 224),
    ("preact_resnet50", {}, "paper", TIMM, "resnetv2_50", {}, 224),
    *[(n, {}, "paper", TV, n, {}, 224) for n in (
        "densenet121", "densenet161", "densenet169", "densenet201",
        "squeezenet1_0", "squeezenet1_1", "mobilenet_v2")],
    ("mobilenet_v1", {}, "timm", TIMM, "mobilenetv1_100", {}, 224),
    # timm's generator set up as TF-slim's network (no such weights in timm): checks "tf"
    ("mobilenet_v1", {}, "tf", TIMM, "mobilenetv1_100", {"pad_type": "same", "bn_eps": 1e-3},
     224),
    ("shufflenet_v2_x0_5", {}, "paper", TV, "shufflenet_v2_x0_5", {}, 224),
    *[(n, {}, "torchvision", TV, n, {}, 224) for n in (
        "shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0")],
    *[(f"efficientnet_{v}", {}, "torchvision", TV, f"efficientnet_{v}", {}, r) for v, r in (
        ("b0", 224), ("b1", 240), ("b2", 288), ("b3", 300), ("b4", 380), ("b5", 456),
        ("b6", 528), ("b7", 600))],
    *[(f"efficientnet_{v}", {}, "tf", TIMM, f"tf_efficientnet_{v}", {}, r) for v, r in (
        ("b0", 224), ("b1", 240), ("b2", 260), ("b3", 300), ("b4", 380), ("b5", 456),
        ("b6", 528), ("b7", 600))],
    # timm's legacy_xception is a PyTorch port (BN eps 1e-5, symmetric pool padding): the
    # paper network; Keras' own ("tf") needs Keras, not installed with the peers
    ("xception", {}, "paper", TIMM, "legacy_xception", {}, 299),
    # timm's port counts the padding of its SAME average pools, TF-slim does not: "tf"
    # differs from it there (and only there), "timm" is its function
    ("nasnet_a_large", {}, "timm", TIMM, "nasnetalarge", {}, 331),
    ("nasnet_a_large", {}, "tf", TIMM, "nasnetalarge", {}, 331),
    ("cspresnet50", {}, "paper", TIMM, "cspresnet50", {}, 256),
    ("cspdarknet53", {}, "paper", TIMM, "cspdarknet53", {}, 256),
    ("fcn32s", {"num_classes": 21}, "paper", TV, "fcn_resnet50", {"num_classes": 21,
                                                                   "aux_loss": False}, 224),
]
FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "peers"


def peer_model(lib: str, name: str, kwargs: dict):
    if lib == "torchvision":
        import torchvision

        models = torchvision.models
        where = models if hasattr(models, name) else models.segmentation
        return getattr(where, name)(weights=None, weights_backbone=None, **kwargs) \
            if where is not models else getattr(models, name)(weights=None, **kwargs)
    import timm

    return timm.create_model(name, pretrained=False, **kwargs)


def randomise(model: torch.nn.Module, seed: int = 0) -> None:
    """Random BN statistics and affine parameters: a peer's init may zero a block's last BN
    scale (timm's ResNets), which would hide every difference inside the block."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                if m.affine:
                    m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)


def _logits(out):
    return out["out"] if isinstance(out, dict) else out  # torchvision's segmentation models


def check(row, tmp: Path) -> tuple[str, float, float, str]:
    """(status, max abs diff, max relative diff, why) for one pair."""
    from safetensors.torch import save_file

    import cnnlab

    name, kwargs, release, lib, peer_name, peer_kwargs, size = row
    torch.manual_seed(0)
    try:
        peer = peer_model(lib, peer_name, peer_kwargs).eval()
    except Exception as e:  # noqa: BLE001  (a peer this version lacks: say so, go on)
        return "no peer", float("nan"), float("nan"), f"{type(e).__name__}: {e}"
    randomise(peer)
    state = {k: v.contiguous() for k, v in peer.state_dict().items()}
    batch = 1 if size >= 300 else 2
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = _logits(peer(x))
    del peer
    worst, worst_abs, why = 0.0, 0.0, ""
    # .pth keeps the registration order; safetensors sorts names (the name rules restore it)
    for path in (tmp / f"{peer_name}.pth", tmp / f"{peer_name}.safetensors"):
        if path.suffix == ".pth":
            torch.save(state, path)
        else:
            save_file(state, str(path))
        try:
            ours = cnnlab.create_model(name, release=release, pretrained=path, **kwargs).eval()
            with torch.no_grad():
                got = _logits(ours(x))
        except Exception as e:  # noqa: BLE001
            path.unlink()
            return "no fit", float("inf"), float("inf"), f"{path.suffix}: {str(e)[:300]}"
        path.unlink()
        if got.shape != want.shape:
            return "no fit", float("inf"), float("inf"), \
                f"{path.suffix}: output {tuple(got.shape)} vs {tuple(want.shape)}"
        diff = float((got - want).abs().max())
        rel = diff / float(want.abs().max())
        if rel > worst:
            worst, worst_abs, why = rel, diff, path.suffix
    return ("ok" if worst <= 1e-5 else "DIFFERS"), worst_abs, worst, \
        why if worst > 1e-5 else ""


def write_fixture(row) -> None:
    """The peer's tensor names and shapes, in its registration order."""
    name, _, _, lib, peer_name, peer_kwargs, _ = row
    sd = peer_model(lib, peer_name, peer_kwargs).state_dict()
    FIXTURES.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"model": name, "peer": f"{lib}.{peer_name}",
                       "tensors": [[k, list(v.shape)] for k, v in sd.items()]}) + "\n"
    (FIXTURES / f"{lib}_{peer_name}.json.gz").write_bytes(
        gzip.compress(text.encode(), compresslevel=9, mtime=0))


# small seeded peer checkpoints committed as test fixtures (fp16, as many releases are: the
# peer's output is computed from the same fp16 values): (fixture, library, peer, kwargs, size)
CHECKPOINTS = [
    ("squeezenet1_1", TV, "squeezenet1_1", {"num_classes": 10}, 64),
    ("shufflenet_v2_x0_5", TV, "shufflenet_v2_x0_5", {"num_classes": 10}, 64),
    ("mobilenet_v2_035", TV, "mobilenet_v2", {"width_mult": 0.35, "num_classes": 10}, 64),
    ("tf_efficientnet_w05_d05", TIMM, "_gen_efficientnet",
     {"variant": "tf_efficientnet_b0", "channel_multiplier": 0.5, "depth_multiplier": 0.5,
      "bn_eps": 1e-3, "pad_type": "same", "num_classes": 10}, 64),
    ("timm_mobilenetv1_025", TIMM, "_gen_mobilenet_v1",
     {"variant": "mobilenetv1_100", "channel_multiplier": 0.25, "num_classes": 10}, 64),
]
CKPT = FIXTURES / "checkpoints"


def checkpoint_peer(lib: str, name: str, kwargs: dict):
    if name.startswith("_gen_"):  # timm's generator: a released family at another width
        from timm.models import efficientnet

        return getattr(efficientnet, name)(**kwargs)
    return peer_model(lib, name, kwargs)


def write_checkpoint(row) -> None:
    """A seeded peer state dict (BN statistics and affine random), fp16, and the peer's
    output on a seeded input."""
    from safetensors.torch import save_file

    fixture, lib, name, kwargs, size = row
    torch.manual_seed(0)
    peer = checkpoint_peer(lib, name, kwargs).eval()
    randomise(peer)
    half = {k: (v.half() if v.is_floating_point() else v).contiguous()
            for k, v in peer.state_dict().items()}
    peer.load_state_dict({k: v.float() if v.is_floating_point() else v
                          for k, v in half.items()})
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1)).half()
    with torch.no_grad():
        y = _logits(peer(x.float()))
    CKPT.mkdir(parents=True, exist_ok=True)
    meta = {"peer": f"{lib}.{name}", "kwargs": json.dumps(kwargs),
            "versions": _versions()}
    save_file(half, str(CKPT / f"{fixture}.safetensors"), metadata=meta)
    save_file({"input": x, "output": y.contiguous()}, str(CKPT / f"{fixture}.io.safetensors"),
              metadata=meta)
    print(f"wrote {fixture}: {sum(v.numel() for v in half.values())} values")


def _versions() -> str:
    import importlib.metadata as md

    return ", ".join(f"{p} {md.version(p)}" for p in ("torch", "torchvision", "timm"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write-fixtures", action="store_true")
    ap.add_argument("--no-check", action="store_true", help="only write the fixtures")
    ap.add_argument("--write-checkpoints", action="store_true",
                    help="rewrite the seeded peer checkpoints under tests/fixtures/peers/")
    ap.add_argument("--only", default="", help="comma-separated cnnlab names")
    ap.add_argument("--peers", default="", help="comma-separated peer names (lib.name)")
    args = ap.parse_args(argv)
    only = set(filter(None, args.only.split(",")))
    peers = set(filter(None, args.peers.split(",")))
    rows = [r for r in PAIRS if (not only or r[0] in only)
            and (not peers or f"{r[3]}.{r[4]}" in peers)]
    if args.write_checkpoints:
        for row in CHECKPOINTS:
            write_checkpoint(row)
    bad = 0
    print(f"{'cnnlab':<22}{'release':<13}{'peer':<34}{'status':<9}"
          f"{'max abs diff':<14}max rel diff", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for row in rows:
            if args.write_fixtures:
                write_fixture(row)
            if args.no_check:
                continue
            status, diff, rel, why = check(row, Path(tmp))
            bad += status != "ok"
            print(f"{row[0]:<22}{row[2]:<13}{row[3] + '.' + row[4]:<34}{status:<9}"
                  f"{diff:<14.2e}{rel:.2e}" + (f"  {why}" if why else ""), flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

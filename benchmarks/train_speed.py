"""Training speed: cnnlab's trainer against a plain PyTorch loop with a per-sample DataLoader.

    python benchmarks/train_speed.py [--threads 1] [--steps 20] [--repeats 3] [--max-epochs 20]
                                     [--bf16 | --no-bf16] [--skip-throughput] [--skip-mnist]
                                     [--json]

1. Images per second over ``--steps`` optimizer steps (wall clock, end to end: data, forward,
   backward, step, a final evaluation on 256 images; after a 3-step warm-up of each; the
   best of ``--repeats`` alternating runs) for ``lenet5`` (MNIST, 1×32×32, batch
   32), ``resnet20`` (if registered) and ``mobilenet_v1`` width 0.25 (3×32×32, batch 128, the
   CIFAR recipe's 4-px pad-crop + flip; random images — speed does not depend on content).
2. Seconds to 98 % validation accuracy for ``lenet5`` on ``mnist:data/mnist --val-split 2000``
   (8,000 training images) with the ``lenet`` recipe (SGD-momentum, lr 1e-3, batch 32),
   evaluating after every epoch, both stopping at 98 % (or ``--max-epochs``); best of
   ``--repeats`` alternating runs with the same seed. Then one run of cnnlab through the
   recipe's 20 epochs for its final accuracy.
3. lenet5's accuracy with the ``lenet`` recipe on the built-in digits.

The plain loop is what a tutorial writes: a ``Dataset`` whose ``__getitem__`` converts,
normalises, pads, crops and flips one image; ``DataLoader(shuffle=True, num_workers=0)``
(workers would fight the trainer for the shared CPU); NCHW tensors; the same model, optimizer
settings, batch size and schedule. cnnlab's gains come from the dataset held as one tensor
with batch augmentation (no per-sample Python) and channels_last (oneDNN's fast layout),
which the trainer turns on whenever the model runs with it.

Beside each row: the share of the plain loop's time spent in its ``DataLoader`` (the loader
iterated alone for the same steps) and the speed-up an input pipeline that cost nothing could
bring to the plain loop, 1 / (1 − share): on a small CPU the model's compute dominates, so
this bound, not the loader, limits what batching the data can win. ``bf16`` adds a run of
cnnlab's trainer with ``amp="bf16"`` (autocast; default on CPUs with native bf16 dot
products, avx512_bf16 or AMX).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time

import torch
import torch.nn.functional as F

import cnnlab
from cnnlab.data import DataSplit, TensorData, load_dataset
from cnnlab.table import render
from cnnlab.train import TrainConfig, get_recipe, train


class PerSample(torch.utils.data.Dataset):
    def __init__(self, data: TensorData, pad: int = 0, flip: bool = False):
        self.x, self.y, self.pad, self.flip = data.x, data.y, pad, flip
        self.mean = torch.tensor(data.mean).view(-1, 1, 1)
        self.std = torch.tensor(data.std).view(-1, 1, 1)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        img = (self.x[i].float() / 255 - self.mean) / self.std
        if self.pad:
            h, w = img.shape[-2:]
            img = F.pad(img, (self.pad,) * 4)
            t, lft = random.randint(0, 2 * self.pad), random.randint(0, 2 * self.pad)
            img = img[:, t:t + h, lft:lft + w]
        if self.flip and random.random() < 0.5:
            img = img.flip(-1)
        return img, int(self.y[i])


def plain_evaluate(model, data: TensorData) -> float:
    model.eval()
    correct = n = 0
    with torch.no_grad():
        for x, y in torch.utils.data.DataLoader(PerSample(data), batch_size=256):
            correct += (model(x).argmax(1) == y).sum().item()
            n += len(y)
    model.train()
    return 100.0 * correct / n


def plain_loader(split: DataSplit, cfg: TrainConfig) -> torch.utils.data.DataLoader:
    aug = cfg.augment or ""
    pad = int(aug.split("crop:")[1].split(",")[0]) if "crop:" in aug else 0
    return torch.utils.data.DataLoader(PerSample(split.train, pad, "flip" in aug),
                                       batch_size=cfg.batch_size, shuffle=True, drop_last=True,
                                       num_workers=0)


def plain_train(model, split: DataSplit, cfg: TrainConfig, steps: int | None = None,
                max_epochs: int = 0, target: float | None = None):
    """Returns (seconds, steps, epochs, last val top-1)."""
    loader = plain_loader(split, cfg)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                          weight_decay=cfg.weight_decay)
    gammas = cfg.gamma if isinstance(cfg.gamma, tuple) else (cfg.gamma,) * len(cfg.milestones)
    t0 = time.perf_counter()
    step = epoch = 0
    top1 = 0.0
    while True:
        passed = sum(epoch >= m for m in cfg.milestones)
        for g in opt.param_groups:
            g["lr"] = cfg.lr * math.prod(gammas[:passed])
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if steps and step >= steps:
                break
        epoch += 1
        if steps and step >= steps:
            top1 = plain_evaluate(model, split.val)
            break
        top1 = plain_evaluate(model, split.val)
        if (target and top1 >= target) or epoch >= max_epochs:
            break
    return time.perf_counter() - t0, step, epoch, top1


def synthetic(shape, n=4096, classes=10, seed=0) -> DataSplit:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n + 256, *shape), generator=g, dtype=torch.uint8)
    y = torch.randint(0, classes, (n + 256,), generator=g)
    tr, va = TensorData(x[:n], y[:n], (0.5,) * shape[0], (0.25,) * shape[0]), \
        TensorData(x[n:], y[n:], (0.5,) * shape[0], (0.25,) * shape[0])
    return DataSplit(tr, va, classes, shape[0], "random")


def native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (elsewhere oneDNN emulates it, slowly)."""
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def loader_seconds(split: DataSplit, cfg: TrainConfig, steps: int) -> float:
    """The plain loop's DataLoader alone for ``steps`` batches."""
    loader = plain_loader(split, cfg)
    t0 = time.perf_counter()
    n = 0
    while n < steps:
        for _ in loader:
            n += 1
            if n >= steps:
                break
    return time.perf_counter() - t0


def throughput(steps: int, repeats: int = 3, bf16: bool = False) -> list[dict]:
    mnist = load_dataset("mnist:data/mnist", val_split=2000, input_size=(1, 32, 32))
    mnist.val = mnist.val.subset(range(256))
    cifar_cfg = get_recipe("resnet_cifar").config(iters=steps, eval_every=10**6)
    jobs = [("lenet5", {}, mnist, get_recipe("lenet").config(iters=steps, eval_every=10**6))]
    if "resnet20" in cnnlab.list_models():
        jobs.append(("resnet20", {}, synthetic((3, 32, 32)), cifar_cfg))
    jobs.append(("mobilenet_v1", {"width_mult": 0.25, "num_classes": 10},
                 synthetic((3, 32, 32)), cifar_cfg))
    rows = []
    for name, kw, split, cfg in jobs:
        variants = {"ours": cfg, **({"bf16": cfg.replace(amp="bf16")} if bf16 else {})}
        # warm-up of each (oneDNN builds its kernels on first use, once per process)
        for c in variants.values():
            train(cnnlab.create_model(name, **kw), split, c.replace(iters=3), progress=False)
        plain_train(cnnlab.create_model(name, **kw), split, cfg, steps=3)
        times: dict[str, list[float]] = {k: [] for k in (*variants, "plain", "data")}
        for _ in range(repeats):  # alternate, keep the best: the CPU is shared
            for k, c in variants.items():
                torch.manual_seed(0)
                model = cnnlab.create_model(name, **kw)
                t0 = time.perf_counter()
                train(model, split, c, progress=False)
                times[k].append(time.perf_counter() - t0)
            torch.manual_seed(0)
            model = cnnlab.create_model(name, **kw)
            times["plain"].append(plain_train(model, split, cfg, steps=steps)[0])
            times["data"].append(loader_seconds(split, cfg, steps))
        best = {k: min(v) for k, v in times.items()}
        images = steps * cfg.batch_size
        share = best["data"] / best["plain"]
        row = {"model": name, "batch": cfg.batch_size, "steps": steps,
               "cnnlab_img_s": images / best["ours"], "plain_img_s": images / best["plain"],
               "speedup": best["plain"] / best["ours"], "plain_data_share": share,
               "data_free_bound": 1 / max(1 - share, 1e-9)}
        if bf16:
            row["bf16_img_s"] = images / best["bf16"]
            row["bf16_speedup"] = best["plain"] / best["bf16"]
        rows.append(row)
    return rows


class Reached(Exception):
    pass


def time_to_98(max_epochs: int, repeats: int = 3) -> dict:
    """Seconds to 98 % for both (best of ``repeats`` alternating runs: the same seed gives
    the same epochs, so the best run is the one the shared CPU disturbed least), then one
    full run of the recipe for cnnlab's final accuracy."""
    split = load_dataset("mnist:data/mnist", val_split=2000, input_size=(1, 32, 32))
    cfg = get_recipe("lenet").config()
    ours, plain, ours_epoch, plain_epochs, plain_top1 = [], [], None, 0, 0.0
    for _ in range(repeats):
        torch.manual_seed(0)
        model = cnnlab.create_model("lenet5")
        t0 = time.perf_counter()

        def stop(row):
            if row.get("val_top1", 0) >= 98:
                raise Reached(row["epoch"])

        try:
            train(model, split, cfg, progress=False, epoch_hooks=[stop])
        except Reached as e:
            ours.append(time.perf_counter() - t0)
            ours_epoch = e.args[0]
        torch.manual_seed(0)
        model = cnnlab.create_model("lenet5")
        s, _, plain_epochs, plain_top1 = plain_train(model, split, cfg, max_epochs=max_epochs,
                                                     target=98.0)
        if plain_top1 >= 98:
            plain.append(s)
    torch.manual_seed(0)
    model = cnnlab.create_model("lenet5")
    t0 = time.perf_counter()
    res = train(model, split, cfg, progress=False)
    return {"cnnlab_s_to_98": min(ours, default=None), "cnnlab_epochs_to_98": ours_epoch,
            "cnnlab_final_top1": res.metrics["top1"], "cnnlab_total_s": time.perf_counter() - t0,
            "cnnlab_epochs": len(res.history), "plain_s_to_98": min(plain, default=None),
            "plain_epochs": plain_epochs, "plain_top1": plain_top1}


def digits_accuracy() -> dict:
    split = load_dataset("digits", input_size=(1, 32, 32))
    torch.manual_seed(0)
    model = cnnlab.create_model("lenet5")
    t0 = time.perf_counter()
    res = train(model, split, get_recipe("lenet").config(), progress=False)
    return {"digits_top1": res.metrics["top1"], "digits_epochs": len(res.history),
            "digits_s": time.perf_counter() - t0}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3, help="best of N, alternating")
    ap.add_argument("--max-epochs", type=int, default=20)
    ap.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=native_bf16(),
                    help="also time the trainer with bf16 autocast (default: on CPUs with "
                    "native bf16)")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--skip-mnist", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    random.seed(0)
    out: dict = {"threads": args.threads}
    if not args.skip_throughput:
        out["throughput"] = rows = throughput(args.steps, args.repeats, args.bf16)
        if not args.json:
            head = ["model", "batch", "steps", "plain img/s", "plain in loader",
                    "bound if loading were free", "cnnlab img/s", "speed-up"]
            table = [[r["model"], r["batch"], r["steps"], f"{r['plain_img_s']:.0f}",
                      f"{100 * r['plain_data_share']:.0f}%", f"{r['data_free_bound']:.2f}x",
                      f"{r['cnnlab_img_s']:.0f}", f"{r['speedup']:.2f}x"] for r in rows]
            if args.bf16:
                head += ["cnnlab bf16 img/s", "bf16 speed-up"]
                for t, r in zip(table, rows):
                    t += [f"{r['bf16_img_s']:.0f}", f"{r['bf16_speedup']:.2f}x"]
            print(render(table, head))
    if not args.skip_mnist:
        out["mnist"] = m = time_to_98(args.max_epochs, args.repeats)
        if not args.json:
            fmt = lambda s: f"{s:.1f} s" if s is not None else "not reached"  # noqa: E731
            print(f"\nlenet5 to 98% on the MNIST split: cnnlab {fmt(m['cnnlab_s_to_98'])} "
                  f"(epoch {m['cnnlab_epochs_to_98']}), plain loop {fmt(m['plain_s_to_98'])} "
                  f"({m['plain_epochs']} epochs, {m['plain_top1']:.2f}%)")
            if m["cnnlab_s_to_98"] and m["plain_s_to_98"]:
                print(f"speed-up to 98%: {m['plain_s_to_98'] / m['cnnlab_s_to_98']:.2f}x")
            print(f"lenet5 after the full lenet recipe ({m['cnnlab_epochs']} epochs, "
                  f"{m['cnnlab_total_s']:.0f} s): {m['cnnlab_final_top1']:.2f}% on the "
                  "2,000 held-out MNIST images")
    out["digits"] = d = digits_accuracy()
    if not args.json:
        print(f"lenet5 on the digits default ({d['digits_epochs']} epochs, "
              f"{d['digits_s']:.0f} s): {d['digits_top1']:.2f}% on 360 held-out images")
    else:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

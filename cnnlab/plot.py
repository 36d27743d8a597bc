"""Pictures that say more than a table: accuracy (or parameters) against mult-adds."""

from __future__ import annotations

import json
from pathlib import Path

from cnnlab.io import atomic_path


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ValueError("plots need matplotlib: pip install 'cnnlab[plot]'") from None
    return plt


def plot_tradeoff(points: list[dict], path) -> list[str]:
    """Scatter of the paper's top-1 against mult-adds (log x), as MobileNets Fig. 4/5 and
    EfficientNet Fig. 1; marker area follows the parameter count. ``points``: dicts with
    model, macs, params, top1. Models without a paper top-1 cannot be placed: they are left
    out and returned (a ValueError when none has one)."""
    shown = [p for p in points if p.get("top1") is not None]
    left_out = [p["model"] for p in points if p.get("top1") is None]
    if not shown:
        raise ValueError("none of these models has a paper top-1 at this input size: "
                         "nothing to plot")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    biggest = max(p["params"] for p in shown)
    for p in shown:
        ax.scatter(p["macs"] / 1e6, p["top1"], s=30 + 400 * p["params"] / biggest, alpha=0.6)
        ax.annotate(p["model"], (p["macs"] / 1e6, p["top1"]), fontsize=7, xytext=(4, 4),
                    textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("mult-adds (millions, log scale)")
    ax.set_ylabel("ImageNet top-1 (%, paper)")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title("accuracy vs. computation (marker area: parameters)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return left_out


def read_metrics(run_dir) -> list[dict]:
    """The per-epoch rows of a training run (``DIR/metrics.jsonl``, written by ``train``)."""
    d = Path(run_dir)
    f = d / "metrics.jsonl"
    if not f.is_file():
        raise ValueError(f"no metrics.jsonl in {d} (written by `cnnlab train --out {d}`)")
    rows = []
    for i, line in enumerate(f.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise ValueError(f"{f}:{i}: not a JSON line") from None
    if not rows:
        raise ValueError(f"{f} is empty")
    return rows


# one panel per quantity: (title, the metrics.jsonl keys drawn in it)
CURVE_PANELS = [("loss", ["train_loss", "val_loss", "val_ema_loss"]),
                ("accuracy (%)", ["train_top1", "val_top1", "val_top5", "val_ema_top1"]),
                ("learning rate", ["lr"])]


def plot_curves(rows: list[dict], path) -> str:
    """Loss, accuracy and learning rate per epoch of a training run, side by side."""
    plt = _pyplot()
    ep = [r["epoch"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, (title, keys) in zip(axes, CURVE_PANELS):
        for k in keys:
            pts = [(e, r[k]) for e, r in zip(ep, rows) if r.get(k) is not None]
            if pts:
                ax.plot(*zip(*pts), marker="o", ms=3, label=k)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if title == "learning rate":
            ax.set_yscale("log")
        else:
            ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return str(path)

"""Pictures that say more than a table: accuracy (or parameters) against mult-adds."""

from __future__ import annotations

from cnnlab.io import atomic_path


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ValueError("plots need matplotlib: pip install 'cnnlab[plot]'") from None
    return plt


def plot_tradeoff(points: list[dict], path) -> str:
    """Scatter of mult-adds (log x) against the paper's top-1 where every model has one
    (MobileNets Fig. 4/5, EfficientNet Fig. 1), else against parameters; marker area
    follows the parameter count. ``points``: dicts with model, macs, params, top1."""
    plt = _pyplot()
    have_top1 = all(p.get("top1") is not None for p in points)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    biggest = max(p["params"] for p in points)
    for p in points:
        y = p["top1"] if have_top1 else p["params"] / 1e6
        ax.scatter(p["macs"] / 1e6, y, s=30 + 400 * p["params"] / biggest, alpha=0.6)
        ax.annotate(p["model"], (p["macs"] / 1e6, y), fontsize=7, xytext=(4, 4),
                    textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("mult-adds (millions, log scale)")
    ax.set_ylabel("ImageNet top-1 (%, paper)" if have_top1 else "parameters (millions)")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title("accuracy vs. computation" if have_top1 else "parameters vs. computation")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return str(path)

"""What the seeded experiment scripts share: their common options, the seed loop (run here,
or apart with ``--save`` and tabulated together with ``--load``), mean ± std and the figure
file. Imported as ``from _common import ...`` by scripts run as ``python experiments/X.py``."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path


def ms(values) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    values = list(values)
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def pm(values, digits: int = 2) -> str:
    """``"m ± s"`` (just ``m`` for one value)."""
    values = list(values)
    m, s = ms(values)
    return f"{m:.{digits}f} ± {s:.{digits}f}" if len(values) > 1 else f"{m:.{digits}f}"


def seed_parser(doc: str, figure: str, data: str = "mnist:data/mnist",
                quick_help: str = "1 epoch each (a smoke test)") -> argparse.ArgumentParser:
    """--seeds, --quick, --data, --figure, --save and --load, as every seeded script has."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--quick", action="store_true", help=quick_help)
    ap.add_argument("--data", default=data)
    ap.add_argument("--figure", default=figure)
    ap.add_argument("--save", help="write the seeds' rows to this JSON file and stop "
                    "(run seeds as separate processes, then --load them all)")
    ap.add_argument("--load", nargs="+", help="tabulate rows saved by --save")
    return ap


def collect(args, jobs: Callable[[object], Iterable[tuple[str, Callable[[], dict]]]],
            val_split: int = 2000) -> list[dict] | None:
    """The rows: read from ``--load`` files, or run — ``jobs(split)`` yields (label, run)
    pairs, each run's row gets its CPU seconds. With ``--save`` the rows are written and
    None is returned (the caller stops)."""
    if args.load:
        return [row for f in args.load for row in json.loads(Path(f).read_text())]
    from cnnlab.data import load_dataset

    split = load_dataset(args.data, val_split=val_split, seed=0)
    rows = []
    for label, run in jobs(split):
        t_cpu = time.process_time()
        rows.append(run())
        rows[-1]["cpu_s"] = time.process_time() - t_cpu
        print(f"{label}: {rows[-1]}", file=sys.stderr, flush=True)
    if args.save:
        Path(args.save).write_text(json.dumps(rows))
        return None
    return rows


def cpu_minutes(rows: list[dict]) -> float:
    return sum(r.get("cpu_s", 0) for r in rows) / 60


def save_figure(fig, path, dpi: int | None = None) -> None:
    """Lay out, write (making the folder) and close."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)

"""Hinton, Vinyals, Dean 2015, Sec. 3 (deck 002:1554-1596, 004:59-63) on the MNIST split.

    python experiments/distillation.py [--seeds 0 1 2] [--quick]

- teacher 784-1200-1200-10: dropout 0.5, ±2 px jitter (``crop:2``), max-norm on every unit's
  incoming weights; small 784-800-800-10 trained plainly; the same small net distilled at
  T = 20 (α = 0.9, no dropout, no jitter). Paper on 60k/10k: 67 / 146 / 74 test errors.
  Goal here: the distilled net closes ≥ 60 % of the small net's gap to the teacher.
- omitted class: the transfer set has no 3s; accuracy on the 3s before and after raising the
  3's bias by the amount fit on the first half of the validation set (reported on the other
  half). Paper: 98.6 % of the test 3s right after the shift.
- transfer set of 7s and 8s only; accuracy over all classes before and after lowering the
  7/8 biases (fit as above). Paper: 47.3 % → 87 %.

Data: the 10,000 MNIST images in ``data/mnist``, 8,000 train / 2,000 validation (seeded);
errors are on the 2,000 validation images. One thread; see experiments/README.md for cost.
"""

from __future__ import annotations

import sys

import torch
from _common import collect, cpu_minutes, ms, save_figure, seed_parser

from cnnlab.compress.distill import DistillLoss, fit_bias_shift, logits_of, max_norm
from cnnlab.models.lenet import MLP
from cnnlab.train import TrainConfig, evaluate, train

PAPER = {"teacher": 67, "small": 146, "distilled": 74}  # errors of 10,000
RECIPE = dict(batch_size=100, lr=0.05, momentum=0.9, weight_decay=0.0, schedule="cosine",
              device="cpu", channels_last=False)
T, ALPHA, MAX_NORM = 20.0, 0.9, 3.5


def fit(model, split, epochs, seed, **kw):
    hooks = kw.pop("step_hooks", ())
    loss_fn = kw.pop("loss_fn", None)
    cfg = TrainConfig(epochs=epochs, seed=seed, **{**RECIPE, **kw})
    return train(model, split, cfg, loss_fn=loss_fn, step_hooks=hooks, progress=False)


def only(split, keep):
    idx = [i for i, y in enumerate(split.train.y.tolist()) if keep(y)]
    from dataclasses import replace

    return replace(split, train=split.train.subset(idx))


def shifted_accuracy(model, split, classes, which=None):
    """Fit one shift of ``classes``' logits on the first half of the validation set; report
    accuracy (on ``which`` classes, or all) on the second half, before and after."""
    z, y = logits_of(model, split.val)
    half = len(y) // 2
    shift, _ = fit_bias_shift(z[:half], y[:half], classes)
    z2, y2 = z[half:], y[half:]
    sel = torch.ones_like(y2, dtype=torch.bool) if which is None else \
        torch.isin(y2, torch.tensor(which))
    before = 100.0 * float((z2.argmax(1) == y2)[sel].float().mean())
    z2 = z2.clone()
    z2[:, list(classes)] += shift
    after = 100.0 * float((z2.argmax(1) == y2)[sel].float().mean())
    return before, after, shift


def run_seed(split, seed, ep, student_augment="", main_only=False, distill_lr=None):
    torch.manual_seed(seed)
    row = {}
    soft = {"lr": distill_lr} if distill_lr else {}  # the distilled nets' learning rate
    teacher = MLP(hidden=(1200, 1200), drop_rate=0.5)
    fit(teacher, split, ep["teacher"], seed, augment="crop:2", step_hooks=[max_norm(MAX_NORM)])
    row["teacher"] = evaluate(teacher, split.val)["top1"]
    torch.manual_seed(seed + 1)  # the plain and the distilled small net start alike
    small = MLP(hidden=(800, 800))
    fit(small, split, ep["small"], seed)
    row["small"] = evaluate(small, split.val)["top1"]
    for key, augment in (("distilled", ""), ("distilled_jitter", student_augment)):
        if key == "distilled_jitter" and not augment:
            continue
        torch.manual_seed(seed + 1)
        student = MLP(hidden=(800, 800))
        fit(student, split, ep["small"], seed, loss_fn=DistillLoss(teacher, T, ALPHA),
            augment=augment, **soft)
        row[key] = evaluate(student, split.val)["top1"]
        print(f"seed {seed}: {row}", file=sys.stderr, flush=True)  # partial rows survive
    if student_augment:  # the control: the same jitter without a teacher
        torch.manual_seed(seed + 1)
        control = MLP(hidden=(800, 800))
        fit(control, split, ep["small"], seed, augment=student_augment)
        row["small_jitter"] = evaluate(control, split.val)["top1"]
    if main_only:
        return row
    no3 = MLP(hidden=(800, 800))
    fit(no3, only(split, lambda c: c != 3), ep["small"], seed,
        loss_fn=DistillLoss(teacher, T, ALPHA), **soft)
    row["no3_before"], row["no3_after"], row["no3_shift"] = shifted_accuracy(no3, split, [3], [3])
    s78 = MLP(hidden=(800, 800))
    fit(s78, only(split, lambda c: c in (7, 8)), ep["only78"], seed,
        loss_fn=DistillLoss(teacher, T, ALPHA))
    row["78_before"], row["78_after"], row["78_shift"] = shifted_accuracy(s78, split, [7, 8])
    return row


def plot(rows, n_val, path):
    from cnnlab.plot import _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=110)
    names = [k for k in ("teacher", "small", "distilled", "distilled_jitter", "small_jitter")
             if k in rows[0]]
    ours = [ms([100 - r[k] for r in rows]) for k in names]
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], [m for m, _ in ours], 0.4, yerr=[s for _, s in ours],
           label=f"ours: MNIST 8k/2k, {len(rows)} seeds", capsize=3)
    ax.bar([x + 0.2 for x in xs][:3], [PAPER[k] / 100 for k in names[:3]], 0.4,
           label="Hinton et al. 2015: 60k/10k")
    ax.set_xticks(list(xs), ["teacher 1200-1200\n(dropout, jitter)", "small 800-800",
                             "small distilled\nT=20", "distilled,\njittered too",
                             "small, jitter,\nno teacher"][:len(names)], fontsize=8)
    ax.set_ylabel("test / validation error (%)")
    ax.legend(fontsize=8)
    ax.set_title("distillation on MNIST")
    save_figure(fig, path)


def main() -> int:
    ap = seed_parser(__doc__, "experiments/figures/distillation.png")
    ap.add_argument("--student-augment", default="",
                    help="adds a variant beyond the paper, beside the paper's student: jitter "
                    "the distilled student's transfer set too (the teacher labels the same "
                    "jittered batch), e.g. crop:2; and its control, the small net trained "
                    "plainly with that jitter")
    ap.add_argument("--epochs", type=int, nargs=2, metavar=("TEACHER", "SMALL"),
                    help="epochs of the teacher and of the small nets (default 15 10)")
    ap.add_argument("--distill-lr", type=float,
                    help="learning rate of the distilled nets (default: the recipe's 0.05)")
    ap.add_argument("--main-only", action="store_true",
                    help="only teacher / small / distilled (no omitted-class runs)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    ep = dict(teacher=1, small=1, only78=1) if args.quick else \
        dict(teacher=15, small=10, only78=15)
    if args.epochs:
        ep.update(teacher=args.epochs[0], small=args.epochs[1])
    n = 2000
    rows = collect(args, lambda split: (
        (f"seed {seed}", lambda seed=seed: run_seed(split, seed, ep, args.student_augment,
                                                     args.main_only, args.distill_lr))
        for seed in args.seeds), val_split=n)
    if rows is None:
        return 0
    print(f"MNIST 8,000/{n:,}, {len(rows)} seeds, mean ± std; epochs {ep}; "
          f"{cpu_minutes(rows):.0f} CPU-min on 1 thread (2-core shared machine)")
    print("| net | val errors (of 2,000) | val error % | paper (errors of 10,000) |")
    print("|---|---|---|---|")
    keys = [k for k in ("teacher", "small", "distilled", "distilled_jitter", "small_jitter")
            if k in rows[0]]
    for k in keys:
        m, s = ms([(100 - r[k]) * n / 100 for r in rows])
        print(f"| {k} | {m:.1f} ± {s:.1f} | {m / n * 100:.2f} % | {PAPER.get(k, '—')} |")
    print()
    for k in keys[2:4]:
        gap = [(r[k] - r["small"]) / (r["teacher"] - r["small"]) * 100
               if r["teacher"] != r["small"] else float("nan") for r in rows]
        m, s = ms(gap)
        print(f"gap closed by {k}: {m:.0f} ± {s:.0f} % (per seed "
              + ", ".join(f"{g:.0f}" for g in gap) + "; goal ≥ 60 %; paper 91 %)")
    plot(rows, n, args.figure)
    if "no3_before" not in rows[0]:
        return 0
    print("\n| transfer set | accuracy before shift | after shift (fit on val half) | paper |")
    print("|---|---|---|---|")
    b, a = ms([r["no3_before"] for r in rows]), ms([r["no3_after"] for r in rows])
    print(f"| no 3s (accuracy on 3s) | {b[0]:.1f} ± {b[1]:.1f} % | {a[0]:.1f} ± {a[1]:.1f} % "
          "| 98.6 % after |")
    b, a = ms([r["78_before"] for r in rows]), ms([r["78_after"] for r in rows])
    print(f"| 7s and 8s only (all classes) | {b[0]:.1f} ± {b[1]:.1f} % | {a[0]:.1f} ± "
          f"{a[1]:.1f} % | 47.3 % → 87 % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

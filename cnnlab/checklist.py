"""The deck checklist's rows that cnnlab can show done, and the rewriting of the checklist.

``/work/shared/DECK-CHECKLIST.md`` (the audit of the decks, item by item) lists each item as a
table row ``| ID | Item | Lines | Status | Evidence |``. :data:`EVIDENCE` holds, for the rows
the library now covers, the status they earn, the evidence to print and checks that look the
evidence up in the library (a registered model, a reference table, a recipe's settings, a
function), so a row is marked only while what it cites exists. :func:`mark` rewrites the rows
whose checks pass and recounts the totals table; ``cnnlab checklist FILE`` runs it.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass

Check = Callable[[], "str | None"]  # None when the evidence exists, else why not
STATUSES = ("DONE", "PARTIAL", "MISSING")
ROW = re.compile(r"^\| (\d{3}-\d{2}) \|")


def model(name: str, table: str | None = None, **kwargs) -> Check:
    """``name`` is registered (with a reference row citing ``table``, with ``kwargs``)."""
    def check():
        from cnnlab.models import list_models, model_info

        if name not in list_models():
            return f"model {name} is not registered"
        if table is None and not kwargs:
            return None
        refs = model_info(name).references
        if any((table is None or table in r.table) and all(r.kwargs.get(k) == v
                                                           for k, v in kwargs.items())
               for r in refs):
            return None
        return f"{name} has no reference row for {table or ''} {kwargs or ''}".strip()
    return check


def recipe(name: str, **fields) -> Check:
    """The recipe ``name`` exists with these settings."""
    def check():
        from cnnlab.train.config import RECIPES

        if name not in RECIPES:
            return f"recipe {name} does not exist"
        cfg = RECIPES[name].config()
        bad = [k for k, v in fields.items() if getattr(cfg, k, None) != v]
        return f"recipe {name} differs in {', '.join(bad)}" if bad else None
    return check


def code(path: str) -> Check:
    """``module:attribute`` exists."""
    def check():
        mod, _, attr = path.partition(":")
        try:
            obj = importlib.import_module(mod)
        except ImportError:
            return f"module {mod} does not exist"
        for part in attr.split(".") if attr else ():
            if not hasattr(obj, part):
                return f"{path} does not exist"
            obj = getattr(obj, part)
        return None
    return check


def tta(mode: str) -> Check:
    def check():
        from cnnlab.train.tta import TTA

        return None if mode in TTA else f"no TTA mode {mode}"
    return check


def builder_arg(name: str, arg: str) -> Check:
    """The builder of ``name`` takes ``arg``."""
    def check():
        import inspect

        from cnnlab.models import model_info

        params = inspect.signature(model_info(name).builder).parameters
        return None if arg in params else f"{name} takes no {arg}"
    return check


def ablation(name: str, *arms: str) -> Check:
    """The ``cnnlab ablate`` study ``name`` is registered, with these arms."""
    def check():
        from cnnlab.ablate import get_ablation, list_ablations

        if name not in list_ablations():
            return f"no ablation {name}"
        have = {v.name for v in get_ablation(name).variants}
        missing = [a for a in arms if a not in have]
        return f"ablation {name} has no arm {', '.join(missing)}" if missing else None
    return check


@dataclass(frozen=True)
class Evidence:
    status: str
    text: str
    checks: tuple[Check, ...]


def _e(status: str, text: str, *checks: Check) -> Evidence:
    return Evidence(status, text, checks)


# issue 21 (canon completion): the rows its work closes or advances
EVIDENCE: dict[str, Evidence] = {
    "000-07": _e("DONE", "recipe squeezenet: lr 0.04, linear (poly 1) decay, batch 512",
                 recipe("squeezenet", lr=0.04, schedule="poly", power=1.0)),
    "000-19": _e("DONE", "xception_fc, inception_v3_fc: two 4096 FC layers before the "
                 "classifier (Table 2's JFT heads)", model("xception_fc"),
                 model("inception_v3_fc")),
    "000-32": _e("DONE", "mobilenet_v1 reference row Table 9 (0.50, 160 px) verified",
                 model("mobilenet_v1", "Table 9", width_mult=0.5)),
    "000-33": _e("DONE", "mobilenet_v1 reference rows Table 10 (num_classes=120) verified; "
                 "no Stanford Dogs training (data not shipped)",
                 model("mobilenet_v1", "Table 10", num_classes=120)),
    "000-35": _e("PARTIAL", "cnnlab.detect: SSD and SSDLite heads on MobileNet (any "
                 "registered backbone), mAP@0.5 on MNIST canvases (experiments/detection.py); "
                 "no COCO, no Faster R-CNN", code("cnnlab.detect:build_ssd"),
                 code("cnnlab.detect:mean_average_precision")),
    "001-14": _e("DONE", "eval --tta multicrop+dense (Table 5's combination); ensembles: "
                 "eval --checkpoint A --checkpoint B (averaged softmax)",
                 tta("multicrop+dense"), code("cnnlab.compress.distill:Ensemble")),
    "001-19": _e("DONE", "eval --tta 144crop: 4 scales x 3 squares x 6 crops x 2 mirrors, "
                 "softmax averaged (tests/test_tta.py)", tta("144crop")),
    "001-22": _e("DONE", "eval --tta 10crop / 144crop, and ensembles of checkpoints "
                 "(repeated --checkpoint)", tta("10crop"), tta("144crop"),
                 code("cnnlab.compress.distill:Ensemble")),
    "001-35": _e("DONE", "densenet_b (bottleneck) and densenet_c (theta = 0.5) registered",
                 model("densenet_b"), model("densenet_c")),
    "001-01": _e("PARTIAL", "lenet1989: 16x16 input, scaled tanh, 9,760 parameters (verify); "
                 "the 7,291 / 2,007 zip-code digits are not available offline",
                 model("lenet1989", "Sec. 5")),
    "002-03": _e("DONE", "lenet1, lenet4 and lenet5 registered with their papers' counts "
                 "(LeNet-4's 'about 17,000' parameters noted against its own layout, 50,698)",
                 model("lenet1"), model("lenet4"), model("lenet5")),
    "002-11": _e("DONE", "train --preprocess zca[:EPS]: fitted on the training split, kept "
                 "in the checkpoint (cnnlab.data.whiten)",
                 code("cnnlab.data.whiten:ZCAWhitening"),
                 code("cnnlab.data.whiten:attach_preprocess")),
    "002-12": _e("DONE", "NIN initialises from a Gaussian of std 0.05 (models/nin.py)",
                 code("cnnlab.models.nin:INIT_STD")),
    "002-13": _e("DONE", "recipe nin: reduce-on-plateau by 10", recipe("nin",
                                                                        schedule="plateau")),
    "002-19": _e("DONE", "cnnlab.train.tta.q_scales; eval --train-scale S|SMIN-SMAX (or the "
                 "checkpoint's scale augmentation)", code("cnnlab.train.tta:q_scales")),
    "002-21": _e("DONE", "eval --tta multiscale --train-scale 256-512 evaluates at {256, "
                 "384, 512} (the jittered-S set)", tta("multiscale"),
                 code("cnnlab.train.tta:q_scales")),
    "002-22": _e("DONE", "dense, 150-crop and eval --tta multicrop+dense", tta("multicrop+dense")),
    "002-25": _e("DONE", "train --preprocess mean-image (kept in the checkpoint)",
                 code("cnnlab.data.whiten:MeanImage")),
    "002-31": _e("PARTIAL", "recipe bn_inception (higher lr, 6x faster decay, 1/5 L2, no "
                 "photometric distortion); no BN ablation",
                 recipe("bn_inception", schedule="step")),
    "003-17": _e("DONE", "complexities verified per g and width; ablation shufflenet_groups "
                 "(g = 1, 2, 3, 4, 8 at equal mult-adds, 3 seeds; experiments/README.md)",
                 model("shufflenet_v1_g8", "Table 2", width_mult=0.25),
                 code("cnnlab.ablate.studies:shufflenet_groups")),
    "003-18": _e("DONE", "shuffle=False; ablation shufflenet_shuffle (g = 2, 3, 8 on/off, 3 "
                 "seeds; experiments/README.md)", builder_arg("shufflenet_v1", "shuffle"),
                 code("cnnlab.ablate.studies:shufflenet_shuffle")),
    "003-20": _e("DONE", "shufflenet_v1_se (526.5 M vs 527 M) and shufflenet_v1_shallow (26 "
                 "layers; 21.58 M noted against the printed 40 M)",
                 model("shufflenet_v1_se", "with SE", width_mult=2.0),
                 model("shufflenet_v1_shallow", "shallow", width_mult=0.5)),
    "003-22": _e("PARTIAL", "SSD/SSDLite heads attach to ShuffleNet (features_only); no COCO",
                 code("cnnlab.detect:build_ssd")),
    "003-25": _e("DONE", "layers/aggregated.py: SplitTransformMerge, EarlyConcat, as_form; "
                 "equivalence tested", code("cnnlab.layers.aggregated:as_form")),
    "003-26": _e("DONE", "models/resnext.py template_params, bottleneck_width (Table 2's d)",
                 code("cnnlab.models.resnext:bottleneck_width")),
    "003-28": _e("DONE", "resnet200, preact_resnet200, resnext101_1x100d, 2x64d, 64x4d",
                 model("resnet200"), model("resnext101_1x100d"), model("resnext101_64x4d")),
    "003-29": _e("DONE", "inception_v4 (exact count noted), inception_resnet_v2, resnet200",
                 model("inception_v4"), model("resnet200")),
    "003-37": _e("PARTIAL", "NASNet-A CIFAR 6@768 (3.3 M) and 7@2304 registered; NASNet-B/C "
                 "(cells drawn only in the paper's figures), Shake-Shake, NAS v3 missing",
                 model("nasnet_a_cifar_6_768"), model("nasnet_a_cifar_7_2304")),
    "003-38": _e("PARTIAL", "NASNet-A 5@1538 and 7@1920 registered (exact counts noted); "
                 "PolyNet, DPN-131, SENet missing", model("nasnet_a_5_1536"),
                 model("nasnet_a_7_1920")),
    "003-40": _e("PARTIAL", "SSD/SSDLite heads attach to any backbone with feature maps; no "
                 "Faster R-CNN, no COCO", code("cnnlab.detect:build_ssd")),
    # issue 20 (the claims lab): rows an ablation re-runs at CPU scale (MNIST-300, 3 seeds;
    # verdicts and the paper's figures in experiments/README.md)
    **{row: _e("DONE", f"cnnlab ablate {name} ({', '.join(arms)}; 3 seeds, "
               "experiments/README.md)", ablation(name, *arms))
       for row, name, arms in (
           ("000-13", "squeezenet_bypass", ("none", "simple", "complex")),
           ("000-15", "xception_segments", ("segments=1", "segments=4", "segments=C")),
           ("001-11", "vgg_init", ("net_a", "from_net_a", "normal", "glorot")),
           ("001-27", "degradation", ("plain20", "plain56", "resnet20", "resnet56")),
           ("001-41", "mobilenetv2_linear", ("linear", "relu6")),
           ("001-42", "mobilenetv2_linear", ("linear", "expansion_shortcut", "no_shortcut")),
           ("002-06", "relu_tanh", ("relu", "tanh")),
           ("002-17", "vgg_init", ("net_a", "from_net_a")),
           ("002-24", "gap_fc", ("gap", "fc")),
           ("002-34", "factorisation", ("3x3_relu", "3x3_linear")),
           ("002-36", "asymmetric_factorisation", ("3x3", "3x1_1x3_relu", "3x1_1x3_linear")),
           ("002-37", "grid_reduction", ("pool_first", "conv_first", "efficient")),
           ("002-39", "degradation", ("plain20", "plain56")),
           ("002-56", "simpnet_depth", ("8_layers", "10_layers", "13_layers")),
           ("002-59", "simpnet_kernel", ("3x3", "5x5", "7x7")),
           ("002-60", "simpnet_delayed_pool", ("early_L3", "default_L5", "delayed_L7")),
           ("002-61", "strided_pool", ("maxpool", "strided")),
           ("002-63", "simpnet_balanced", ("balanced", "wide_end")),
           ("002-67", "simpnet_saf", ("saf", "plain_pool")),
           ("003-05", "densenet_curve", ("densenet_20k", "densenet_bc_180k")),
           ("003-19", "shufflenet_units", ("shufflenet", "vgg_like", "resnet", "xception_like",
                                           "resnext")),
       )},
    "002-68": _e("DONE", "cnnlab ablate --seeds N: every arm over N seeds, mean ± std and a "
                 "verdict against the seed spread", code("cnnlab.ablate.core:verdicts")),
}


@dataclass
class Result:
    marked: list[str]        # rows rewritten
    unchanged: list[str]     # rows already showing their evidence
    refused: dict[str, str]  # rows whose evidence is not (yet) there: why
    text: str


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def mark(text: str, only: list[str] | None = None,
         evidence: dict[str, Evidence] | None = None) -> Result:
    """``text`` with every row of ``evidence`` (or of ``only``) whose checks pass set to its
    status and evidence, and the totals table recounted."""
    evidence = EVIDENCE if evidence is None else evidence
    lines = text.splitlines(keepends=True)
    ids = {m.group(1): i for i, ln in enumerate(lines) if (m := ROW.match(ln))}
    if not ids:
        raise ValueError("no checklist rows (| NNN-NN | item | lines | status | evidence |)")
    wanted = list(only) if only else [k for k in evidence if k in ids]
    unknown = [k for k in wanted if k not in ids or k not in evidence]
    if unknown:
        raise ValueError(f"no evidence or no row for {', '.join(unknown)} (known: "
                         f"{', '.join(k for k in evidence if k in ids)})")
    res = Result([], [], {}, "")
    for key in wanted:
        ev = evidence[key]
        why = next((w for w in (c() for c in ev.checks) if w), None)
        if why:
            res.refused[key] = why
            continue
        i = ids[key]
        cells = _cells(lines[i])
        if len(cells) < 5:
            raise ValueError(f"row {key} has {len(cells)} cells, not 5")
        new = cells[:3] + [ev.status, ev.text]
        row = "| " + " | ".join(new) + " |\n"
        if cells[3] in STATUSES and STATUSES.index(cells[3]) < STATUSES.index(ev.status):
            res.refused[key] = f"already {cells[3]}; the evidence here shows {ev.status}"
            continue
        if cells[3:5] == new[3:5]:
            res.unchanged.append(key)
        else:
            lines[i] = row
            res.marked.append(key)
    res.text = recount("".join(lines))
    return res


def recount(text: str) -> str:
    """The totals table (``| 000 | DONE | PARTIAL | MISSING |`` rows and the ``**all**`` row)
    recounted from the item rows; ``dup`` rows are not counted."""
    counts: dict[str, dict[str, int]] = {}
    for ln in text.splitlines():
        if ROW.match(ln):
            cells = _cells(ln)
            if len(cells) >= 4 and cells[3] in STATUSES:
                deck = cells[0][:3]
                counts.setdefault(deck, dict.fromkeys(STATUSES, 0))[cells[3]] += 1
    out = []
    for ln in text.splitlines(keepends=True):
        m = re.match(r"^\| (\d{3}) \| \d+ \| \d+ \| \d+ \|\s*$", ln)
        if m and m.group(1) in counts:
            c = counts[m.group(1)]
            ln = f"| {m.group(1)} | {c['DONE']} | {c['PARTIAL']} | {c['MISSING']} |\n"
        elif re.match(r"^\| \*\*all \(\d+\)\*\* \|", ln):
            t = {s: sum(c[s] for c in counts.values()) for s in STATUSES}
            ln = (f"| **all ({sum(t.values())})** | **{t['DONE']}** | **{t['PARTIAL']}** | "
                  f"**{t['MISSING']}** |\n")
        out.append(ln)
    return "".join(out)

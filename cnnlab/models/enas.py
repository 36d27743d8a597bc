"""ENAS's CIFAR-10 networks (Pham, Guan, Zoph, Le & Dean 2018, Sec. 2.3-2.4, Fig. 7-8,
Table 2), as data: any architecture the search finds (``cnnlab.search``) is one of these.

Macro space (Sec. 2.3): a chain of ``L`` layers after a 3×3 stem; each layer applies one of
six operations to the previous layer's output and adds any subset of earlier layers as skip
inputs; after layers ``L/3 − 1`` and ``2L/3 − 1`` every layer so far is halved in resolution
by a factorised reduction and the channel count doubles.

Micro space (Sec. 2.4): a NASNet-style stack of cells (:class:`cnnlab.layers.nas_ops.Cell`
executing a :class:`~cnnlab.layers.nas_ops.Genotype`): a 3×3 stem with 3F channels, then
``L`` normal cells with a reduction cell after the ``L/3``-th and ``2L/3``-th, filters
doubling at each reduction; each cell concatenates its loose ends (states no block reads).

Layouts follow the authors' released code (``src/cifar10/general_child.py``,
``micro_child.py``): a macro convolution is a 1×1 convolution to F channels then the k×k
one, each conv → BN → ReLU; pooling follows a 1×1 convolution; a fixed (retrained) layer
concatenates its skip inputs with its output and projects them back to F channels (ReLU →
1×1 conv → BN). A config (dict or JSON file, see :func:`enas`) names one network.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.nn as nn

from cnnlab.layers.conv import ConvNormAct
from cnnlab.layers.nas_ops import Cell, FactorizedReduce, Genotype, ReLUConvBN
from cnnlab.layers.separable import SeparableConv2d
from cnnlab.models.base import ClassifierHead, ConvNet, check_arg
from cnnlab.registry import Paper, register_model

ENAS = Paper("Efficient Neural Architecture Search via Parameter Sharing",
             "Pham, Guan, Zoph, Le, Dean", 2018, "1802.03268")

# Sec. 2.3, in the released code's numbering (the arcs below use these indices)
MACRO_OPS = ("conv_3x3", "sep_conv_3x3", "conv_5x5", "sep_conv_5x5", "avg_pool_3x3",
             "max_pool_3x3")
# Sec. 2.4, numbered as micro_child.py numbers them; names are cnnlab.layers.nas_ops.OPS keys
MICRO_OPS = ("sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3", "identity")


class MacroOp(nn.Module):
    """One macro-space operation: 1×1 conv-BN-ReLU to ``out_chs``, then the k×k (separable)
    conv-BN-ReLU or the 3×3 stride-1 pooling."""

    def __init__(self, op: str, in_chs: int, out_chs: int):
        super().__init__()
        check_arg(op in MACRO_OPS, f"unknown macro operation {op!r}; choose from {MACRO_OPS}")
        self.inp = ConvNormAct(in_chs, out_chs, 1)
        k = 5 if op.endswith("5x5") else 3
        if op.startswith("conv"):
            self.body = ConvNormAct(out_chs, out_chs, k)
        elif op.startswith("sep"):
            self.body = nn.Sequential(SeparableConv2d(out_chs, out_chs, k),
                                      nn.BatchNorm2d(out_chs), nn.ReLU())
        elif op.startswith("avg"):
            self.body = nn.AvgPool2d(3, 1, 1, count_include_pad=False)
        else:
            self.body = nn.MaxPool2d(3, 1, 1)

    def forward(self, x):
        return self.body(self.inp(x))


def macro_pool_layers(num_layers: int) -> tuple[int, ...]:
    """Layers after which the resolution halves (general_child.py: ``L//3 − 1``, ``2L//3 −
    1``)."""
    d = num_layers // 3
    return (d - 1, 2 * d - 1) if d >= 1 else ()


def micro_pool_layers(num_layers: int) -> tuple[int, ...]:
    """Positions of the two reduction cells among ``num_layers + 2`` cells (micro_child.py)."""
    d = num_layers // 3
    return (d, 2 * d + 1)


def check_macro_arch(ops, skips) -> None:
    check_arg(len(ops) >= 1 and all(o in MACRO_OPS for o in ops),
              f"macro ops must be names from {MACRO_OPS}, got {ops!r}")
    check_arg(len(skips) == len(ops) and all(len(s) == i and all(b in (0, 1) for b in s)
                                              for i, s in enumerate(skips)),
              "macro skips: layer i needs a list of i zeros/ones (one per earlier layer)")


class ENASMacroNet(ConvNet):
    """A macro-space network: ``ops[i]`` at layer i, ``skips[i][j] = 1`` adds layer j's
    output to layer i's inputs (Fig. 7 draws them as the arrows around the chain)."""

    def __init__(self, ops, skips, filters=36, num_classes=10, in_chans=3, drop_rate=0.0):
        super().__init__()
        check_macro_arch(ops, skips)
        check_arg(isinstance(filters, int) and filters > 0 and filters % 2 == 0,
                  f"filters must be a positive even int, got {filters!r}")
        self.num_classes = num_classes
        self.ops, self.skips = list(ops), [list(s) for s in skips]
        n = len(ops)
        pools = macro_pool_layers(n)
        self.stem = ConvNormAct(in_chans, filters, 3, act=None)
        self.layers = nn.ModuleList()
        self.reduce = nn.ModuleDict()  # "p_j": layer j's output after reduction p
        c, chans = filters, [filters]  # chans[j]: channels of output j (0 = stem)
        for i, op in enumerate(ops):
            layer = nn.Module()
            layer.op = MacroOp(op, chans[-1], c)
            k = sum(self.skips[i])
            layer.skip = ReLUConvBN((k + 1) * c, c, [1]) if k else None
            self.layers.append(layer)
            chans.append(c)
            self.add_feature(f"layers.{i}.{'skip' if k else 'op'}",
                             2 ** sum(p < i for p in pools), c)
            if i in pools:
                # only outputs read later need a reduced copy
                later = {i + 1} | {j + 1 for ll in range(i + 1, n) for j, b in
                                   enumerate(self.skips[ll]) if b}
                for j in sorted(later & set(range(1, i + 2))):
                    self.reduce[f"{pools.index(i)}_{j}"] = FactorizedReduce(chans[j], 2 * c)
                c *= 2
                chans = [c] * len(chans)
        self.pools = pools
        self.min_input_size = 2 ** len(pools)
        self.head = ClassifierHead(c, num_classes, drop_rate=drop_rate)

    def forward_features(self, x):
        outs = [self.stem(x)]  # outs[j + 1] = layer j's output
        for i, layer in enumerate(self.layers):
            out = layer.op(outs[-1])
            if layer.skip is not None:
                ins = [outs[j + 1] for j, b in enumerate(self.skips[i]) if b]
                out = layer.skip(torch.cat([*ins, out], 1))
            outs.append(out)
            if i in self.pools:
                p = self.pools.index(i)
                outs = [self.reduce[f"{p}_{j}"](o) if f"{p}_{j}" in self.reduce else None
                        for j, o in enumerate(outs)]
        return outs[-1]


def micro_genotype(nodes) -> Genotype:
    """A micro cell from its blocks ``(input_a, op_a, input_b, op_b)``: the loose ends (states
    no block reads, the two inputs included) are concatenated (Sec. 2.4)."""
    used = {n[0] for n in nodes} | {n[2] for n in nodes}
    loose = [i for i in range(2 + len(nodes)) if i not in used]
    return Genotype(nodes=nodes, concat=loose, combine="add")


def arc_to_genotype(arc) -> Genotype:
    """Decode one cell of the released code's ``fixed_arc`` (4 ints a block: x_id, x_op,
    y_id, y_op, ops numbered as :data:`MICRO_OPS`)."""
    arc = [int(a) for a in arc]
    check_arg(len(arc) % 4 == 0, "a micro arc has 4 numbers per block")
    return micro_genotype([(arc[i], MICRO_OPS[arc[i + 1]], arc[i + 2], MICRO_OPS[arc[i + 3]])
                           for i in range(0, len(arc), 4)])


class ENASMicroNet(ConvNet):
    """``num_layers`` normal cells and two reduction cells, F = ``filters`` per operation in
    the first stack (micro_child.py; the paper's network is 15 layers, F = 36)."""

    def __init__(self, normal: Genotype, reduction: Genotype, num_layers=15, filters=36,
                 stem_multiplier=3, num_classes=10, in_chans=3, drop_rate=0.0,
                 drop_path_rate=0.0):
        super().__init__()
        check_arg(isinstance(num_layers, int) and num_layers >= 1,
                  f"num_layers must be a positive int, got {num_layers!r}")
        check_arg(isinstance(filters, int) and filters > 0 and filters % 2 == 0,
                  f"filters must be a positive even int, got {filters!r}")
        self.num_classes = num_classes
        self.stem = ConvNormAct(in_chans, stem_multiplier * filters, 3, act=None)
        self.cells = nn.ModuleList()
        c_stem = stem_multiplier * filters
        chans, sizes = [c_stem, c_stem], [1, 1]  # channels and reduction of the last two
        f = filters
        for i in range(num_layers + 2):
            red = i in micro_pool_layers(num_layers)
            f = f * 2 if red else f
            cell = Cell(reduction if red else normal, chans[-2], chans[-1], f, red,
                        reduce_prev=sizes[-2] != sizes[-1], drop_path_rate=drop_path_rate)
            self.cells.append(cell)
            chans.append(cell.out_channels)
            sizes.append(sizes[-1] * (2 if red else 1))
            self.add_feature(f"cells.{i}", sizes[-1], cell.out_channels)
        self.min_input_size = 4
        self.act = nn.ReLU()
        self.head = ClassifierHead(chans[-1], num_classes, drop_rate=drop_rate)

    def forward_features(self, x):
        prev = cur = self.stem(x)
        for cell in self.cells:
            prev, cur = cur, cell(prev, cur)
        return self.act(cur)


def _genotype(d) -> Genotype:
    if isinstance(d, Genotype):
        return d
    return micro_genotype([tuple(n) for n in d["nodes"]]) if "concat" not in d else \
        Genotype(nodes=[tuple(n) for n in d["nodes"]], concat=d["concat"])


def build_from_config(config: dict, num_classes=10, in_chans=3, drop_rate=0.0) -> ConvNet:
    """The network a config names: ``{"space": "macro", "ops": [...], "skips": [[...]...],
    "filters": F}`` or ``{"space": "micro", "normal": {"nodes": [...]}, "reduction": {...},
    "num_layers": L, "filters": F}`` (a cell's ``concat`` defaults to its loose ends)."""
    check_arg(isinstance(config, dict), "an ENAS config is a JSON object")
    space = config.get("space")
    if space == "macro":
        return ENASMacroNet(config["ops"], config["skips"], config.get("filters", 36),
                            num_classes, in_chans, drop_rate)
    if space == "micro":
        return ENASMicroNet(_genotype(config["normal"]), _genotype(config["reduction"]),
                            config.get("num_layers", 15), config.get("filters", 36),
                            config.get("stem_multiplier", 3), num_classes, in_chans, drop_rate)
    raise ValueError(f"an ENAS config needs space 'macro' or 'micro', got {space!r}")


def load_config(config) -> dict:
    if isinstance(config, dict):
        return config
    path = Path(config)
    if not path.is_file():
        raise ValueError(f"ENAS config {path} not found")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"ENAS config {path} is not valid JSON ({e})") from None


@register_model(paper=ENAS, input_size=(3, 32, 32), num_classes=10)
def enas(config: str | os.PathLike | dict | None = None, num_classes=10, in_chans=3,
         drop_rate=0.0):
    """A searched network from its config (the ``final.json`` of ``cnnlab.search``'s run, a
    dict, or a JSON file); without one, the paper's micro-space network (Fig. 8)."""
    cfg = load_config(config) if config is not None else ENAS_MICRO_CIFAR
    return build_from_config(cfg, num_classes, in_chans, drop_rate)


# Released scripts/cifar10_macro_final.sh: the 24-layer network of Fig. 7, one op per layer
# and a skip bit per earlier layer (only ops 0-3 occur: the final run used 4 branches).
_MACRO_ARC = """0 | 3 0 | 0 1 0 | 2 0 0 1 | 2 0 0 0 0 | 3 1 1 0 1 0 | 2 0 0 0 0 0 1 |
2 0 1 1 0 1 1 1 | 1 0 1 1 1 0 1 0 1 | 0 0 0 0 0 0 0 0 0 0 | 2 0 0 0 0 0 1 0 0 0 0 |
0 1 0 0 1 1 0 0 0 0 1 1 | 2 0 1 0 0 0 0 0 1 0 1 1 0 | 1 0 0 1 0 0 0 1 1 1 0 1 0 1 |
0 1 1 0 1 0 1 0 0 0 0 0 1 0 0 | 2 0 0 1 0 0 0 0 0 0 0 1 0 1 0 1 |
2 0 1 0 0 0 1 0 0 1 1 1 1 0 0 1 0 | 2 0 0 0 0 1 0 1 0 1 0 0 1 0 1 0 0 1 |
3 0 1 1 0 1 0 0 0 0 0 1 0 1 0 1 0 0 0 | 3 0 1 1 0 0 0 0 0 0 0 0 0 1 1 0 0 0 0 1 |
0 1 0 0 1 0 1 1 0 0 0 1 0 0 0 0 0 1 1 0 0 | 3 0 1 0 1 1 0 0 1 0 1 1 0 1 1 0 1 0 0 1 0 0 |
0 1 0 1 0 1 0 0 0 0 0 0 0 0 1 0 1 0 0 1 0 0 0 |
0 1 1 0 0 0 1 1 1 0 1 0 0 0 1 0 1 0 0 1 1 0 0 0"""
_MACRO_LAYERS = [[int(v) for v in row.split()] for row in _MACRO_ARC.split("|")]
ENAS_MACRO_CIFAR = {"space": "macro", "ops": [MACRO_OPS[r[0]] for r in _MACRO_LAYERS],
                    "skips": [r[1:] for r in _MACRO_LAYERS], "filters": 96}

# Released scripts/cifar10_micro_final.sh: the cells of Fig. 8, 15 layers, F = 36
ENAS_MICRO_NORMAL = arc_to_genotype("0 2 0 0 0 4 0 1 0 4 1 1 1 0 0 1 0 2 1 1".split())
ENAS_MICRO_REDUCTION = arc_to_genotype("1 0 1 0 0 3 0 2 1 1 3 1 1 0 0 4 0 3 1 1".split())
ENAS_MICRO_CIFAR = {"space": "micro", "num_layers": 15, "filters": 36,
                    "normal": {"nodes": [list(n) for n in ENAS_MICRO_NORMAL.nodes]},
                    "reduction": {"nodes": [list(n) for n in ENAS_MICRO_REDUCTION.nodes]}}


@register_model(paper=ENAS, input_size=(3, 32, 32), num_classes=10, reference=[
    {"params": "21.3M", "table": "Table 2", "top1": 95.77, "kwargs": {"filters": 96},
     "exact_params": 30_798_058,
     "note": "the released 24-layer arc at F = 96 (scripts/cifar10_macro_final.sh) counts "
             "30,798,058 with ops 1/3 separable as Sec. 2.3 names them and 42,410,026 with "
             "the released fixed-arc code's plain convolutions; neither is 21.3 M (F = 80 "
             "would give 21.4 M), so the paper's count is not this arc's"},
    {"params": "38.0M", "table": "Table 2", "top1": 96.13, "kwargs": {"filters": 128},
     "exact_params": 54_711_946,
     "note": "F = 128 for 'more channels' is our guess (the paper and scripts do not give "
             "it); counted as the 21.3 M row, 54,711,946, not 38.0 M"}])
def enas_macro(filters=96, num_classes=10, in_chans=3, drop_rate=0.5):
    """ENAS's macro-space CIFAR-10 network (Fig. 7, the released 24-layer arc); Table 2's
    "more channels" row is ``filters=128`` (the released script does not name it)."""
    return ENASMacroNet(ENAS_MACRO_CIFAR["ops"], ENAS_MACRO_CIFAR["skips"], filters,
                        num_classes, in_chans, drop_rate)


@register_model(paper=ENAS, input_size=(3, 32, 32), num_classes=10, reference=[
    {"params": "4.6M", "table": "Table 2", "top1": 96.46, "exact_params": 3_729_430,
     "note": "the released cells at 15 layers, F = 36 count 3,729,430 without the auxiliary "
             "head the released script trains with (about 0.5 M more, not built here); the "
             "rest of the gap to 4.6 M is not explained by the released code we read"},
    {"params": "4.6M", "table": "Table 2", "top1": 97.11, "exact_params": 3_729_430,
     "note": "the same network trained with CutOut (2.89 % error; cnnlab's --augment "
             "cutout:16); parameters as the row above"}])
def enas_micro(num_layers=15, filters=36, num_classes=10, in_chans=3, drop_rate=0.2,
               drop_path_rate=0.0):
    """ENAS's micro-space CIFAR-10 network (Fig. 8 cells, 15 layers, F = 36; the released
    script keeps 0.8 of the pooled features, drop rate 0.2)."""
    return ENASMicroNet(ENAS_MICRO_NORMAL, ENAS_MICRO_REDUCTION, num_layers, filters, 3,
                        num_classes, in_chans, drop_rate, drop_path_rate)

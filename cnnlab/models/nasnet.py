"""NASNet-A (Zoph, Vasudevan, Shlens & Le 2018), Fig. 2 and 4, Tables 2-3.

A controller searched CIFAR-10 for two cells, a Normal cell (keeps the resolution) and a
Reduction cell (halves it); ImageNet networks stack them (Fig. 2): a 3×3 stride-2 convolution
and two reduction cells as stem, then N normal cells, a reduction cell, N normal cells, a
reduction cell, N normal cells. Filters double at each reduction. "N @ F" names a network by
N and the number of filters F in its penultimate layer; the cells below are data, the
genotypes the released code (TF-slim ``nasnet_utils.py``) executes.

Releases (:mod:`cnnlab.layers.release`): ``"tf"`` is the TF-slim release: BatchNorm eps
1e-3 (decay 0.9997) and TF "SAME" padding, asymmetric on even inputs to strided convolutions
and pools (``nasnet_a_mobile`` at 224 px meets them in three cells); same parameters.
``"timm"`` is timm's ``nasnetalarge``, which differs from TF-slim in one place: its strided
"SAME" average pools pad with zeros and then count them in the average (TF averages the real
pixels only), 2.5e-3 relative at the logits with random weights. Load timm's weights with
``release="timm"`` to compute timm's function, ``"tf"`` to compute TF-slim's.
"""

from __future__ import annotations

from collections import OrderedDict

import torch.nn as nn

from cnnlab.layers.conv import ConvNormAct
from cnnlab.layers.nas_ops import Cell, Genotype
from cnnlab.layers.release import Release
from cnnlab.models.base import ClassifierHead, ConvNet, check_arg
from cnnlab.registry import Paper, register_model

RELEASES = {"tf": Release("tf", "TF-slim: BN eps 1e-3, TF SAME padding", bn_eps=1e-3,
                          bn_momentum=0.0003, same="all"),
            "timm": Release("timm", "timm's port: as tf, but its SAME average pools count the "
                            "padding", bn_eps=1e-3, bn_momentum=0.0003, same="all",
                            same_avg_counts_pad=True)}
NASNET = Paper("Learning Transferable Architectures for Scalable Image Recognition",
               "Zoph, Vasudevan, Shlens, Le", 2018, "1707.07012")

# Fig. 4. Hidden states: 0 = h_{i-1}, 1 = h_i, 2.. = the blocks in order; each block is
# (input_a, op_a, input_b, op_b), its two results added.
NASNET_A_NORMAL = Genotype(
    nodes=[
        (1, "sep_conv_5x5", 0, "sep_conv_3x3"),
        (0, "sep_conv_5x5", 0, "sep_conv_3x3"),
        (1, "avg_pool_3x3", 0, "identity"),
        (0, "avg_pool_3x3", 0, "avg_pool_3x3"),
        (1, "sep_conv_3x3", 1, "identity"),
    ],
    concat=[0, 2, 3, 4, 5, 6],  # h_{i-1} and every block: 6 F channels out
)
NASNET_A_REDUCTION = Genotype(
    nodes=[
        (1, "sep_conv_5x5", 0, "sep_conv_7x7"),
        (1, "max_pool_3x3", 0, "sep_conv_7x7"),
        (1, "avg_pool_3x3", 0, "sep_conv_5x5"),
        (3, "identity", 2, "avg_pool_3x3"),
        (2, "sep_conv_3x3", 1, "max_pool_3x3"),
    ],
    concat=[3, 4, 5, 6],  # 4 F channels out; state 3 is concatenated though block 4 reads it
)

# Released configurations (TF-slim nasnet.py): N cells per stack, penultimate filters F,
# the stem convolution's width, and whether the cell after a reduction cell takes as h_{i-1}
# the output from before the reduction's input (``skip_reduction_layer_input``).
CONFIGS = {
    "mobile": dict(num_cells=4, penultimate_filters=1056, stem_filters=32, skip_reduction=False),
    "large": dict(num_cells=6, penultimate_filters=4032, stem_filters=96, skip_reduction=True),
}
# Table 1 (CIFAR-10): no stem cells, a 3×3 stride-1 stem convolution of 3 f filters
# (TF-slim nasnet_cifar: stem_multiplier 3), 32×32 input, no dropout before the classifier
CIFAR_CONFIGS = {(6, 768): 3.3, (7, 2304): 27.6}
# Table 2's other ImageNet sizes. The paper's "1538" is not a multiple of the 24 f channels
# the last cells concatenate; 1536 (f = 64) is the nearest network of Fig. 2. The paper gives
# neither size's stem width: the mobile network's 32 is used.
IMAGENET_SIZES = {(5, 1536): ("10.9M", "2.35B", 78.6, 94.2),
                  (7, 1920): ("22.6M", "4.93B", 80.8, 95.3)}


class AuxHead(nn.Module):
    """Auxiliary classifier after the last cell before the second reduction: ReLU, 5×5/3
    average pool, 1×1 conv 128, conv 768 over the whole map, FC (weighted 0.4 in training)."""

    def __init__(self, in_chs: int, size: int, num_classes: int):
        super().__init__()
        s = (size - 5) // 3 + 1
        self.features = nn.Sequential(OrderedDict(
            act=nn.ReLU(), pool=nn.AvgPool2d(5, 3), proj=ConvNormAct(in_chs, 128, 1),
            conv=ConvNormAct(128, 768, s, padding=0), flatten=nn.Flatten(1)))
        self.fc = nn.Linear(768, num_classes)

    def forward(self, x):
        return self.fc(self.features(x))


class NASNet(ConvNet):
    """NASNet-A ``num_cells @ penultimate_filters`` (Fig. 2): a 3×3/2 stem convolution, two
    reduction cells with f/4 and f/2 filters per operation, then three stacks of ``num_cells``
    normal cells with f, 2f and 4f, a reduction cell opening the second and third stack;
    f = penultimate_filters / 24 (the last cells concatenate six states of 4f channels).
    ``normal``/``reduction`` are genotypes: any searched pair of cells stacks the same way.
    ``drop_path_rate`` is a constant ScheduledDropPath rate (a trainer may ramp each
    ``cell.drop_path_rate``); with ``aux_head`` the auxiliary classifier's logits come out of
    ``forward`` beside the main ones in training mode.
    """

    def __init__(self, num_cells=4, penultimate_filters=1056, stem_filters=32,
                 skip_reduction=False, normal=NASNET_A_NORMAL, reduction=NASNET_A_REDUCTION,
                 num_classes=1000, in_chans=3, drop_rate=0.5, drop_path_rate=0.0,
                 aux_head=False, aux_input_size=224, stem="imagenet"):
        super().__init__()
        check_arg(stem in ("imagenet", "cifar"), f"stem must be 'imagenet' or 'cifar', got "
                                                 f"{stem!r}")
        check_arg(isinstance(num_cells, int) and num_cells >= 1,
                  f"num_cells must be a positive int, got {num_cells!r}")
        # the last normal cells concatenate len(concat) states of 4 f channels each
        per = 4 * len(normal.concat)
        check_arg(isinstance(penultimate_filters, int) and penultimate_filters > 0
                  and penultimate_filters % per == 0 and penultimate_filters // per % 4 == 0,
                  f"penultimate_filters must be a positive multiple of {4 * per}, "
                  f"got {penultimate_filters!r}")
        check_arg(0 <= drop_path_rate < 1, f"drop_path_rate must be in [0, 1), got "
                                           f"{drop_path_rate}")
        self.num_classes = num_classes
        filters = penultimate_filters // per
        cifar = stem == "cifar"
        # CIFAR (Sec. 4.1, TF-slim nasnet_cifar): a 3×3 stride-1 convolution and no stem cells
        self.conv0 = ConvNormAct(in_chans, stem_filters, 3, 1 if cifar else 2,
                                 padding=1 if cifar else 0, act=None)
        self.cells = nn.ModuleDict()
        # channels and reduction of every output so far; cells read the last one as h_i
        outs = [(stem_filters, 1 if cifar else 2)]
        self.add_feature("conv0", outs[0][1], stem_filters)
        self._prev = {}  # cell name -> index into outputs of its h_{i-1} (None: none)
        self.min_input_size = 3

        def add(name, genotype, chs, is_reduction, prev):
            c_prev, r_prev = (None, None) if prev is None else outs[prev]
            c, r = outs[-1]
            cell = Cell(genotype, c_prev, c, chs, is_reduction,
                        reduce_prev=r_prev is not None and r_prev != r,
                        drop_path_rate=drop_path_rate)
            self.cells[name] = cell
            self._prev[name] = prev
            r = r * 2 if is_reduction else r
            outs.append((cell.out_channels, r))
            self.add_feature(f"cells.{name}", r, cell.out_channels)

        if not cifar:
            add("cell_stem_0", reduction, filters // 4, True, None)
            add("cell_stem_1", reduction, filters // 2, True, 0)
        self.aux_head, self._aux_after = None, None
        for stack in range(3):
            scale = 2 ** stack
            for i in range(num_cells):
                n = stack * num_cells + i
                if stack and i == 0:
                    add(f"reduction_cell_{stack - 1}", reduction, filters * scale, True,
                        len(outs) - 2)
                    prev = len(outs) - (3 if skip_reduction else 2)
                else:
                    prev = len(outs) - 2 if len(outs) > 1 else None
                add(f"cell_{n}", normal, filters * scale, False, prev)
            if stack == 1 and aux_head:
                # the kernel of its last conv is the size of the map it gets (TF-slim)
                size = -(-aux_input_size // 2) if cifar else \
                    -(-((aux_input_size - 3) // 2 + 1) // 8)
                check_arg(size >= 5, f"aux_head needs aux_input_size >= 67, got "
                                     f"{aux_input_size}")
                self.aux_head = AuxHead(outs[-1][0], size, num_classes)
                self._aux_after = f"cell_{n}"
        self.act = nn.ReLU()
        self.add_feature("act", outs[-1][1], outs[-1][0])
        self.head = ClassifierHead(outs[-1][0], num_classes, drop_rate=drop_rate)

    def _run(self, x, with_aux: bool):
        outs, aux = [self.conv0(x)], None
        for name, cell in self.cells.items():
            prev = self._prev[name]
            outs.append(cell(None if prev is None else outs[prev], outs[-1]))
            if with_aux and name == self._aux_after:
                aux = self.aux_head(outs[-1])
        return self.act(outs[-1]), aux

    def forward_features(self, x):
        return self._run(x, False)[0]

    def forward(self, x):
        """Logits; in training with ``aux_head=True``, ``(logits, aux_logits)``."""
        self.check_input(x)
        x, aux = self._run(x, self.training and self.aux_head is not None)
        logits = self.forward_head(x)
        return logits if aux is None else (logits, aux)


def _nasnet(variant, num_classes, in_chans, drop_rate, drop_path_rate, aux_head, size):
    return NASNet(**CONFIGS[variant], num_classes=num_classes, in_chans=in_chans,
                  drop_rate=drop_rate, drop_path_rate=drop_path_rate, aux_head=aux_head,
                  aux_input_size=size)


@register_model(paper=NASNET, reference={
    "params": "5.3M", "macs": "564M", "table": "Table 3", "top1": 74.0, "top5": 91.6})
def nasnet_a_mobile(num_classes=1000, in_chans=3, drop_rate=0.5, drop_path_rate=0.0,
                    aux_head=False, aux_input_size=224):
    """NASNet-A (4 @ 1056) at 224 px (Table 3); ``aux_head`` is sized for ``aux_input_size``."""
    return _nasnet("mobile", num_classes, in_chans, drop_rate, drop_path_rate, aux_head,
                   aux_input_size)


@register_model(paper=NASNET, input_size=(3, 331, 331), reference={
    "params": "88.9M", "macs": "23.8B", "table": "Table 2", "top1": 82.7, "top5": 96.2,
    "exact_params": 88_753_150,
    "note": "the released network (TF-slim nasnet_large, no auxiliary head) has 88,753,150 "
            "params (88.75 M); neither 1001 classes (88,757,183) nor the auxiliary head "
            "(93,320,934) gives the paper's 88.9 M"})
def nasnet_a_large(num_classes=1000, in_chans=3, drop_rate=0.5, drop_path_rate=0.0,
                   aux_head=False, aux_input_size=331):
    """NASNet-A (6 @ 4032) at 331 px (Table 2); ``aux_head`` is sized for ``aux_input_size``."""
    return _nasnet("large", num_classes, in_chans, drop_rate, drop_path_rate, aux_head,
                   aux_input_size)


def nasnet_a(num_cells, penultimate_filters, num_classes=1000, in_chans=3, drop_rate=0.5,
             drop_path_rate=0.0, aux_head=False, aux_input_size=299, stem="imagenet"):
    """NASNet-A (N @ F) for any N and F (Fig. 2): the ImageNet stack (3×3/2 conv, two
    reduction stem cells) or, with ``stem="cifar"``, Table 1's CIFAR stack."""
    stem_filters = 3 * (penultimate_filters // 24) if stem == "cifar" else 32
    return NASNet(num_cells, penultimate_filters, stem_filters, False, num_classes=num_classes,
                  in_chans=in_chans, drop_rate=drop_rate, drop_path_rate=drop_path_rate,
                  aux_head=aux_head, aux_input_size=aux_input_size, stem=stem)


_CIFAR_EXACT = {(7, 2304): {
    "exact_params": 32_590_954,
    "note": "not reproduced: Fig. 2's CIFAR stack of the released NASNet-A cells at N = 7, "
            "F = 2304 has 32,590,954 params (34.3 M with the auxiliary head); the 6 @ 768 "
            "network built the same way matches the paper's 3.3 M"}}
for (_n, _f), _params in CIFAR_CONFIGS.items():
    register_model(nasnet_a, name=f"nasnet_a_cifar_{_n}_{_f}", paper=NASNET,
                   input_size=(3, 32, 32), num_classes=10,
                   fixed={"num_cells": _n, "penultimate_filters": _f, "stem": "cifar"},
                   defaults={"num_classes": 10, "drop_rate": 0.0, "aux_input_size": 32},
                   reference={"params": f"{_params}M", "table": "Table 1",
                              **_CIFAR_EXACT.get((_n, _f), {})},
                   doc=f"NASNet-A ({_n} @ {_f}) for CIFAR-10 (Table 1); the paper trains it "
                       "with the auxiliary head and ScheduledDropPath.")
_IMAGENET_EXACT = {(5, 1536): (12_247_544, "2.552G"), (7, 1920): (24_595_884, "5.227G")}
for (_n, _f), (_p, _m, _top1, _top5) in IMAGENET_SIZES.items():
    _ep, _em = _IMAGENET_EXACT[(_n, _f)]
    register_model(nasnet_a, name=f"nasnet_a_{_n}_{_f}", paper=NASNET,
                   input_size=(3, 299, 299), fixed={"num_cells": _n, "penultimate_filters": _f},
                   reference={"params": _p, "macs": _m, "table": "Table 2", "top1": _top1,
                              "top5": _top5, "exact_params": _ep, "exact_macs": _em,
                              "note": f"not reproduced: Fig. 2's stack of the released "
                                      f"NASNet-A cells at N = {_n}, F = {_f} has {_ep:,} "
                                      f"params and {_em} mult-adds at 299 px; the same "
                                      "construction matches 4 @ 1056 and 6 @ 4032"},
                   doc=f"NASNet-A ({_n} @ {_f}) at 299 px (Table 2).")

"""ResNeXt (Xie et al. 2017): aggregated residual transformations, Table 1.

A bottleneck's 3×3 is split into C parallel paths of width d (Fig. 3a); the equivalent form
used here (Fig. 3c) is one grouped convolution of C × d channels with C groups, doubling in
width with every stage while the ResNet layout (Table 1 of He et al. 2015) stays. The template
C×d can be anything; Table 2 lists the set that keeps ResNet-50's complexity: 1×64d, 2×40d,
4×24d, 8×14d, 32×4d. The stride sits in the 3×3 (the authors' code; 4.2 G needs it).
"""

from __future__ import annotations

from cnnlab.models.base import check_arg
from cnnlab.models.resnet import LAYERS, ResNet
from cnnlab.registry import Paper, register_model

RESNEXT = Paper("Aggregated Residual Transformations for Deep Neural Networks",
                "Xie, Girshick, Dollár, Tu, He", 2017, "1611.05431")

# Table 2: cardinality C and bottleneck width d at roughly ResNet-50's complexity
# (the grouped 3×3 of conv2 is C × d = 64, 80, 96, 112, 128 channels wide)
COMPLEXITY_MATCHED = [(2, 40), (4, 24), (8, 14), (32, 4)]
# Tables 1, 3, 4 and 5: the (depth, C, d) the paper reports, with its printed figures
CONFIGS = {
    (50, 2, 40): [], (50, 4, 24): [], (50, 8, 14): [],
    (50, 32, 4): [{"params": "25.0M", "macs": "4.2G", "table": "Table 1"}],
    (101, 2, 40): [], (101, 4, 24): [], (101, 8, 14): [],
    (101, 32, 4): [],
    (101, 2, 64): [],  # Table 4, 2× complexity
    (101, 64, 4): [{"params": "83.6M", "macs": "31.5G", "input_size": (3, 320, 320),
                    "exact_params": 83_455_272, "table": "Table 5",
                    "note": "the network has 83,455,272 parameters; the paper prints 83.6 M"}],
}


@register_model(paper=RESNEXT)
def resnext(depth=50, cardinality=32, base_width=4, num_classes=1000, in_chans=3, drop_rate=0.0):
    """ResNeXt-depth (C × d) for any cardinality C and bottleneck width d (Table 1, Fig. 3c)."""
    check_arg(depth in LAYERS and LAYERS[depth][0] == "bottleneck",
              f"depth must be one of 50, 101, 152, 200, got {depth!r}")
    block, layers = LAYERS[depth]
    return ResNet(block, layers, num_classes, in_chans, drop_rate, shortcut="B",
                  stride_in_1x1=False, cardinality=cardinality, base_width=base_width)


for (_depth, _c, _d), _refs in CONFIGS.items():
    register_model(resnext, name=f"resnext{_depth}_{_c}x{_d}d", paper=RESNEXT, reference=_refs,
                   fixed={"depth": _depth, "cardinality": _c, "base_width": _d},
                   doc=f"ResNeXt-{_depth} ({_c}×{_d}d) (Xie et al. 2017, Table 1 layout, "
                       f"grouped 3x3 {_c * _d} channels wide in conv2).")

"""CSPNet (Wang, Liao, Yeh, Wu, Chen & Hsieh 2020): cross-stage partial ResNet-50, ResNeXt-50
and Darknet-53.

Every stage splits its input in two: one part runs through the stage's residual blocks, the
other bypasses them and is concatenated back before a 1×1 fusion transition (Fig. 2-3), which
cuts the duplicate gradient flow and about 20 % of the computation. The stages below are the
authors' Darknet configurations (``cfg/csresnet50.cfg``, ``csresnext50.cfg``,
``csdarknet53.cfg`` in WongKinYiu/CrossStagePartialNetworks), at their 256×256 input:
leaky ReLU (slope 0.1), a 2×2/2 max pool after the 7×7 stem, and in the first stage of
CSPResNe(X)t a block path narrower than the blocks (64 → 128), added as a partial shortcut.
(timm's cspnet splits that first stage evenly instead: 21.62 M / 20.57 M parameters.)

Deliberate differences from timm's ``cspresnet50``/``cspresnext50``/``cspdarknet53``, which
stay (no ``release=`` gives timm's function): timm splits each stage evenly, uses linear
(activation-free) split convolutions, leaky slope 0.01 and a 3×3 stem pool, where the
authors' Darknet cfgs above have the partial split, activated split convolutions, slope 0.1
and a 2×2 pool. timm's weights therefore do not compute the same function here.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch.nn as nn

from cnnlab.layers.conv import ConvNormAct
from cnnlab.layers.csp import CrossStagePartial, DarkBlock
from cnnlab.layers.resnet_blocks import Bottleneck, ZeroPadShortcut
from cnnlab.models.base import ClassifierHead, ConvNet
from cnnlab.registry import Paper, register_model

CSPNET = Paper("CSPNet: A New Backbone that can Enhance Learning Capability of CNN",
               "Wang, Liao, Yeh, Wu, Chen, Hsieh", 2020, "1911.11929")

LEAKY = partial(nn.LeakyReLU, 0.1)


@dataclass(frozen=True)
class Stage:
    n: int  # residual blocks
    down: int  # channels of the 3×3 stride-2 conv that opens the stage (0: none)
    part: int  # channels split off into the blocks
    cross: int  # channels split off to bypass them
    mid: int  # bottleneck width inside a block
    block: int  # channels out of each block (and of the partial transition)
    out: int  # channels after the fusion transition
    groups: int = 1
    split_act: bool = True  # False: linear split convolution


# (stem, stages, block type): one row per stage of each Darknet cfg
CSPRESNET50 = ("resnet", [
    Stage(n=3, down=0, part=64, cross=128, mid=64, block=128, out=128, split_act=True),
    Stage(n=3, down=128, part=256, cross=256, mid=128, block=256, out=256, split_act=False),
    Stage(n=5, down=256, part=512, cross=512, mid=256, block=512, out=512, split_act=False),
    Stage(n=2, down=512, part=1024, cross=1024, mid=512, block=1024, out=1024, split_act=True),
], "bottleneck")
CSPRESNEXT50 = ("resnet", [  # cardinality 32; the stride-2 convolutions are grouped too
    Stage(n=3, down=0, part=64, cross=128, mid=128, block=128, out=256, groups=32),
    Stage(n=3, down=256, part=256, cross=256, mid=256, block=256, out=512, groups=32,
          split_act=False),
    Stage(n=5, down=512, part=512, cross=512, mid=512, block=512, out=1024, groups=32,
          split_act=False),
    Stage(n=2, down=1024, part=1024, cross=1024, mid=1024, block=1024, out=2048, groups=32),
], "bottleneck")
CSPDARKNET53 = ("darknet", [
    Stage(n=1, down=64, part=64, cross=64, mid=32, block=64, out=64),
    Stage(n=2, down=128, part=64, cross=64, mid=64, block=64, out=128),
    Stage(n=8, down=256, part=128, cross=128, mid=128, block=128, out=256),
    Stage(n=8, down=512, part=256, cross=256, mid=256, block=256, out=512),
    Stage(n=4, down=1024, part=512, cross=512, mid=512, block=512, out=1024),
], "dark")
STEMS = {
    "resnet": dict(chs=64, kernel_size=7, stride=2, pool=True),  # 7×7/2, 2×2/2 max pool
    "darknet": dict(chs=32, kernel_size=3, stride=1, pool=False),  # 3×3/1
}


class CSPNet(ConvNet):
    """A stem, then cross-stage partial stages of residual blocks, then pooling and a
    classifier (the Darknet configurations' 1×1 conv with bias over the pooled features)."""

    def __init__(self, cfg, num_classes=1000, in_chans=3, drop_rate=0.0):
        super().__init__()
        self.num_classes = num_classes
        stem_type, stages, block_type = cfg
        stem = STEMS[stem_type]
        c, reduction = stem["chs"], stem["stride"]
        self.stem = nn.Sequential(ConvNormAct(in_chans, c, stem["kernel_size"], stem["stride"],
                                              act=LEAKY))
        self.feature_info = []
        if reduction > 1:
            self.feature_info.append(dict(module="stem.0", reduction=reduction, channels=c))
        if stem["pool"]:
            self.stem.append(nn.MaxPool2d(2, 2, ceil_mode=True))  # Darknet pads right/bottom
            reduction *= 2
        self.stages = nn.Sequential()
        for i, s in enumerate(stages):
            down = None
            if s.down:
                down = ConvNormAct(c, s.down, 3, 2, groups=s.groups, act=LEAKY)
                c, reduction = s.down, reduction * 2
            blocks = [self._block(block_type, s, s.part if j == 0 else s.block)
                      for j in range(s.n)]
            self.stages.append(CrossStagePartial(blocks, c, s.part, s.cross, s.block, s.out,
                                                 down, LEAKY, s.split_act))
            c = s.out
            self.feature_info.append(dict(module=f"stages.{i}", reduction=reduction,
                                          channels=c))
        self.head = ClassifierHead(c, num_classes, drop_rate=drop_rate)
        self.min_input_size = 1

    @staticmethod
    def _block(block_type, s, in_chs):
        if block_type == "dark":
            return DarkBlock(in_chs, s.mid, LEAKY)
        # Darknet's shortcut adds a narrower input to the first channels of the output
        pad = ZeroPadShortcut(in_chs, s.block) if in_chs != s.block else None
        return Bottleneck(in_chs, s.mid, s.block, groups=s.groups, downsample=pad, act=LEAKY)

    def forward_features(self, x):
        return self.stages(self.stem(x))


def _ref(params, bflops, exact_params, bn, exact_macs, top1, top5):
    return {"params": params, "macs": bflops, "exact_params": exact_params,
            "exact_macs": exact_macs, "top1": top1, "top5": top5,
            "table": "Table 3 / authors' README (Darknet counts, 256x256)",
            "note": f"Darknet's counts: the parameters leave out the {bn:,} batch-norm scales and "
                    f"shifts, and BFLOPs count 2 per multiply-add ({exact_macs:,} x 2 = "
                    f"{2 * exact_macs / 1e9:.3f} B)"}


@register_model(paper=CSPNET, input_size=(3, 256, 256), reference=_ref(
    "21.57M", "8.97B", 21_607_848, 40_192, 4_483_686_400, 76.6, 93.3))
def cspresnet50(num_classes=1000, in_chans=3, drop_rate=0.0):
    """CSPResNet-50 (authors' csresnet50.cfg)."""
    return CSPNet(CSPRESNET50, num_classes, in_chans, drop_rate)


@register_model(paper=CSPNET, input_size=(3, 256, 256), reference=_ref(
    "20.50M", "7.93B", 20_557_480, 57_344, 3_964_616_704, 77.9, 94.0))
def cspresnext50(num_classes=1000, in_chans=3, drop_rate=0.0):
    """CSPResNeXt-50 (authors' csresnext50.cfg): 32 groups in every 3×3 convolution."""
    return CSPNet(CSPRESNEXT50, num_classes, in_chans, drop_rate)


@register_model(paper=CSPNET, input_size=(3, 256, 256), reference=_ref(
    "27.61M", "13.07B", 27_642_184, 35_328, 6_533_652_480, 77.2, 93.6))
def cspdarknet53(num_classes=1000, in_chans=3, drop_rate=0.0):
    """CSPDarknet-53 (authors' csdarknet53.cfg)."""
    return CSPNet(CSPDARKNET53, num_classes, in_chans, drop_rate)

"""Stacked hourglass networks (Newell, Yang & Deng 2016), Sec. 3, Figs. 3–4.

An hourglass pools down to 4×4 and comes back up symmetrically: at every resolution a skip
branch of residual modules keeps the features, which are added to the nearest-neighbour
upsampled output of the lower resolution (Fig. 3). Every module is the pre-activation
bottleneck residual of Fig. 4 (left): BN-ReLU-conv1×1 (half width), BN-ReLU-conv3×3,
BN-ReLU-conv1×1, with a 1×1 convolution on the skip where the width changes. A 256×256
image goes through a 7×7/2 convolution, a residual module, a max pool and two residual
modules to 64×64×256 (Sec. 3.1). Stacks are chained (Fig. 4 right): each predicts heatmaps
(intermediate supervision, Sec. 3.2), which are mapped back by 1×1 convolutions and added to
the stack's input and features to form the next stack's input. The layout follows the
authors' code (pose-hg-train): one residual module per step, 256 features, 4 levels.

In training mode the network returns the list of every stack's heatmaps (a loss on each);
in eval mode only the last stack's, ``(N, num_classes, H/4, W/4)``.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnlab.models.base import ConvNet, check_arg
from cnnlab.registry import Paper, register_model

HOURGLASS_PAPER = Paper("Stacked Hourglass Networks for Human Pose Estimation",
                        "Newell, Yang, Deng", 2016, "1603.06937")

# Sec. 3.1 / authors' code: the stem from 256×256×3 to 64×64×256, (layer, out channels)
STEM = [("conv7x7/2", 64), ("residual", 128), ("maxpool2x2", 128), ("residual", 128),
        ("residual", 256)]
FEATURES = 256  # width of every module in the hourglasses
LEVELS = 4  # 64×64 → 4×4 (Sec. 3.1: "lowest resolution 4x4")
KEYPOINTS = 16  # MPII joints


class Residual(nn.Module):
    """Fig. 4 left: pre-activation bottleneck; the skip is the identity, or a 1×1 convolution
    on the raw input where the width changes (convolutions keep their biases, as in Torch)."""

    def __init__(self, in_chs: int, out_chs: int):
        super().__init__()
        mid = out_chs // 2
        self.body = nn.Sequential(OrderedDict(
            bn1=nn.BatchNorm2d(in_chs), relu1=nn.ReLU(inplace=True),
            conv1=nn.Conv2d(in_chs, mid, 1),
            bn2=nn.BatchNorm2d(mid), relu2=nn.ReLU(inplace=True),
            conv2=nn.Conv2d(mid, mid, 3, padding=1),
            bn3=nn.BatchNorm2d(mid), relu3=nn.ReLU(inplace=True),
            conv3=nn.Conv2d(mid, out_chs, 1)))
        self.skip = nn.Identity() if in_chs == out_chs else nn.Conv2d(in_chs, out_chs, 1)

    def forward(self, x):
        return self.body(x) + self.skip(x)


class Hourglass(nn.Module):
    """Fig. 3, recursively: ``up1`` keeps this resolution; ``low1`` pools and processes,
    ``low2`` is a smaller hourglass (a residual module at the bottom), ``low3`` processes
    again before nearest-neighbour upsampling; the two branches are added."""

    def __init__(self, levels: int, channels: int):
        super().__init__()
        self.up1 = Residual(channels, channels)
        self.pool = nn.MaxPool2d(2, 2)
        self.low1 = Residual(channels, channels)
        self.low2 = Hourglass(levels - 1, channels) if levels > 1 else \
            Residual(channels, channels)
        self.low3 = Residual(channels, channels)

    def forward(self, x):
        up1 = self.up1(x)
        low = self.low3(self.low2(self.low1(self.pool(x))))
        # nearest 2× upsampling; sizing it to up1 also serves inputs not divisible by 2^levels
        return up1 + F.interpolate(low, size=up1.shape[-2:], mode="nearest")


def _lin(in_chs: int, out_chs: int) -> nn.Sequential:
    """The authors' ``lin``: 1×1 convolution, BN, ReLU."""
    return nn.Sequential(OrderedDict(conv=nn.Conv2d(in_chs, out_chs, 1),
                                     bn=nn.BatchNorm2d(out_chs), relu=nn.ReLU(inplace=True)))


class Stack(nn.Module):
    """One hourglass, a residual module and ``lin`` at 64×64; ``score`` predicts heatmaps."""

    def __init__(self, channels: int, levels: int, num_classes: int):
        super().__init__()
        self.hourglass = Hourglass(levels, channels)
        self.res = Residual(channels, channels)
        self.lin = _lin(channels, channels)
        self.score = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x):
        feats = self.lin(self.res(self.hourglass(x)))
        return feats, self.score(feats)


class StackedHourglass(ConvNet):
    """``stacks`` hourglasses with intermediate supervision (Sec. 3.2, Fig. 4 right)."""

    dense_prediction = True

    def __init__(self, stacks: int = 8, num_classes: int = KEYPOINTS, in_chans: int = 3,
                 features: int = FEATURES, levels: int = LEVELS, drop_rate: float = 0.0):
        super().__init__()
        check_arg(isinstance(stacks, int) and stacks >= 1, f"stacks must be >= 1, got {stacks!r}")
        check_arg(isinstance(levels, int) and levels >= 1, f"levels must be >= 1, got {levels!r}")
        check_arg(isinstance(features, int) and features >= 2 and features % 2 == 0,
                  f"features must be an even int >= 2, got {features!r}")
        scale = features / FEATURES  # thinner networks scale the stem alike
        widths = [max(int(c * scale), 2) // 2 * 2 for _, c in STEM]
        widths[-1] = features
        self.stem = nn.Sequential(OrderedDict(
            conv=nn.Conv2d(in_chans, widths[0], 7, 2, 3), bn=nn.BatchNorm2d(widths[0]),
            relu=nn.ReLU(inplace=True),
            res1=Residual(widths[0], widths[1]), pool=nn.MaxPool2d(2, 2),
            res2=Residual(widths[1], widths[3]), res3=Residual(widths[3], widths[4])))
        self.stacks = nn.ModuleList(Stack(features, levels, num_classes) for _ in range(stacks))
        # Fig. 4 right: features (ll_) and heatmaps (tmpOut_) mapped back by 1×1 convolutions
        self.merge_features = nn.ModuleList(nn.Conv2d(features, features, 1)
                                            for _ in range(stacks - 1))
        self.drop = nn.Dropout2d(drop_rate) if drop_rate > 0 else nn.Identity()
        self.num_features, self.levels = features, levels
        self.feature_info = [dict(module="stem.relu", reduction=2, channels=widths[0]),
                             dict(module=f"stacks.{stacks - 1}.lin", reduction=4,
                                  channels=features)]
        # 2^levels pixels must reach the hourglasses past the stem's two halvings
        self.min_input_size = 4 * 2 ** levels - 1
        self.reset_classifier(num_classes)

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        device = next(self.parameters(), torch.empty(0)).device
        with torch.device(device):
            for stack in self.stacks:
                stack.score = nn.Conv2d(self.num_features, num_classes, 1)
            self.merge_preds = nn.ModuleList(nn.Conv2d(num_classes, self.num_features, 1)
                                             for _ in range(len(self.stacks) - 1))

    def get_classifier(self) -> nn.Module:
        return self.stacks[-1].score

    def forward_features(self, x):
        """Every stack's heatmaps (the next stack's input depends on them)."""
        x = self.stem(x)
        heatmaps = []
        for i, stack in enumerate(self.stacks):
            feats, pred = stack(x)
            heatmaps.append(pred)
            if i < len(self.stacks) - 1:
                x = x + self.merge_features[i](self.drop(feats)) + self.merge_preds[i](pred)
        return heatmaps

    def forward_head(self, heatmaps, pre_logits: bool = False):
        return list(heatmaps) if self.training else heatmaps[-1]


_NOTE = ("the paper prints no parameter count; this is the authors' code's network "
         "(pose-hg-train)")


@register_model(paper=HOURGLASS_PAPER, input_size=(3, 256, 256), num_classes=KEYPOINTS)
def hourglass(stacks=8, num_classes=KEYPOINTS, in_chans=3, drop_rate=0.0, features=FEATURES,
              levels=LEVELS):
    """Stacked hourglass (Sec. 3): 256×256 → 64×64 heatmaps; 8 stacks in the paper's
    results (Sec. 4), 2 for the ablations of Sec. 5.1."""
    return StackedHourglass(stacks, num_classes, in_chans, features, levels, drop_rate)

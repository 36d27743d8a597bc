"""Blocks shared by more than one family: one place per block."""

from cnnlab.layers.conv import ConvNormAct, DepthwiseSeparable, make_divisible
from cnnlab.layers.csp import CrossStagePartial, DarkBlock
from cnnlab.layers.fire import Fire
from cnnlab.layers.inception import BasicConv, Branches, InceptionResidual
from cnnlab.layers.inverted_residual import DropPath, InvertedResidual, MBConv, drop_path
from cnnlab.layers.nas_ops import Cell, FactorizedReduce, Genotype
from cnnlab.layers.resnet_blocks import BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck
from cnnlab.layers.se import SqueezeExcite
from cnnlab.layers.separable import SeparableConv2d
from cnnlab.layers.shuffle import ChannelShuffle, channel_shuffle, channel_split

__all__ = ["BasicBlock", "Bottleneck", "PreActBasicBlock", "PreActBottleneck",
           "DropPath", "InvertedResidual", "MBConv", "drop_path", "SqueezeExcite",
           "Fire", "SeparableConv2d", "ChannelShuffle", "channel_shuffle",
           "channel_split", "ConvNormAct", "DepthwiseSeparable", "make_divisible",
           "CrossStagePartial", "DarkBlock", "Cell", "FactorizedReduce", "Genotype",
           "BasicConv", "Branches", "InceptionResidual"]

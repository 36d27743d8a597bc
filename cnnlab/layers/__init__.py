"""Blocks shared by more than one family: one place per block."""

from cnnlab.layers.conv import ConvNormAct, DepthwiseSeparable, make_divisible

__all__ = ["ConvNormAct", "DepthwiseSeparable", "make_divisible"]

"""Deployment: Conv–BN folding, int8 (PyTorch's quantization stack), ONNX export checked in
onnxruntime, latency benchmarks and an energy estimate (Horowitz 2014).

Submodules import their optional dependencies (onnx, onnxruntime) on first use.
"""

from cnnlab.layers.fuse import find_conv_bn, fuse_bn

__all__ = ["find_conv_bn", "fuse_bn"]

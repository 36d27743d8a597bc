"""ONNX export, checked in onnxruntime against PyTorch before the file is kept."""

from __future__ import annotations

import contextlib
import copy
import functools
import warnings

import numpy as np
import torch
import torch.nn as nn

from cnnlab.io import atomic_path

# Registered models that the TorchScript-based exporter cannot export at their small test size,
# and why (checked by tests/test_deploy_export.py: each must still fail for this reason). At
# the paper's input size (224: the pooled map is already 6x6 / 7x7) they export.
_POOL = ("adaptive_avg_pool2d to {0}x{0} from a smaller map (inputs under {1} px): the "
         "exporter handles only output sizes that divide the input")
EXPORT_LIMITS = {
    "alexnet": _POOL.format(6, 195), "alexnet_grouped": _POOL.format(6, 195),
    **{n: _POOL.format(7, 224) for n in (
        "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn",
        "vgg_a", "vgg_a_lrn", "vgg_b", "vgg_c", "vgg_d", "vgg_e")},
}


@functools.cache
def _quantized_narrow() -> None:
    """Teach the TorchScript exporter ``narrow`` on an int8 tensor (ShuffleNet V2's channel
    split, :func:`cnnlab.layers.shuffle.channel_split`). Its own symbolic has no quantized
    form, as reshape, transpose and select have, so an int8 ShuffleNet V2 failed to export.
    Wrapped in ``quantized_args``, a Slice on the int8 values keeps the input's scale and zero
    point, which is what PyTorch's quantized narrow computes. A float input is passed as it
    is."""
    from torch.onnx import symbolic_helper, symbolic_opset11

    narrow = symbolic_helper.quantized_args(True, False, False, False)(symbolic_opset11.narrow)
    torch.onnx.register_custom_op_symbolic("aten::narrow", narrow, 11)


@contextlib.contextmanager
def _one_line_errors():
    """The exporter's errors carry the whole TorchScript graph: keep the first line."""
    try:
        yield
    except (RuntimeError, torch.onnx.errors.OnnxExporterError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ValueError(f"ONNX export failed: {first}") from None


def export_onnx(model: nn.Module, path, input_size: tuple[int, ...], *, opset: int = 17,
                dynamic_batch: bool = True, rtol: float = 1e-4, seed: int = 0,
                fuse_bn: bool = False) -> dict:
    """Export ``model`` (eval mode) to ONNX at ``path`` and check it in onnxruntime.

    The exported graph is run on a random batch in onnxruntime and compared with PyTorch's
    output; the file is only written (atomically) if the maximum relative difference
    (max |ort − torch| / max |torch|) is at most ``rtol``, and, with a dynamic batch, a batch
    of another size runs too. ``fuse_bn=True`` folds every BN that follows a convolution
    first (:func:`cnnlab.layers.fuse.fuse_bn`). Returns a report dict.
    """
    try:
        import onnx
        import onnxruntime as ort
    except ImportError:
        raise ValueError("ONNX export needs onnx and onnxruntime: pip install 'cnnlab[onnx]'") \
            from None
    model = on_cpu(model)
    was_training = model.training
    try:
        return _export_checked(model.eval(), path, input_size, opset, dynamic_batch, rtol,
                               seed, fuse_bn, onnx, ort)
    finally:
        model.train(was_training)


def on_cpu(model: nn.Module) -> nn.Module:
    """``model`` itself if it lives on the CPU, else a CPU copy, so that the caller's model
    stays on its GPU: ONNX export, onnxruntime and PyTorch's int8 kernels run on the CPU."""
    if any(t.device.type != "cpu" for t in (*model.parameters(), *model.buffers())):
        return copy.deepcopy(model).cpu()
    return model


def _export_checked(model, path, input_size, opset, dynamic_batch, rtol, seed, fuse_bn, onnx,
                    ort) -> dict:
    folded = 0
    if fuse_bn:
        from cnnlab.layers.fuse import fuse_bn as fold

        model = fold(model, tuple(input_size))
        folded = len(model.fused_pairs)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((2, *input_size), generator=g)
    with torch.no_grad():
        expected = model(x)
    if not isinstance(expected, torch.Tensor):
        raise ValueError("ONNX export needs a model with a single tensor output in eval mode")
    with atomic_path(path) as tmp:
        with warnings.catch_warnings(), _one_line_errors():
            warnings.simplefilter("ignore")
            _quantized_narrow()
            torch.onnx.export(
                model, (x,), str(tmp), dynamo=False, opset_version=opset,
                input_names=["input"], output_names=["output"],
                dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}
                if dynamic_batch else None)
        onnx.checker.check_model(str(tmp))
        sess = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        got = sess.run(None, {"input": x.numpy()})[0]
        ref = expected.numpy()
        err = float(np.abs(got - ref).max()) if got.shape == ref.shape else float("inf")
        rel = err / max(float(np.abs(ref).max()), 1e-30)
        if not rel <= rtol:
            raise ValueError(f"onnxruntime disagrees with PyTorch (max relative difference "
                             f"{rel:.3g} > {rtol:g}); not writing the file")
        if dynamic_batch:
            other = sess.run(None, {"input": np.concatenate([x.numpy()] * 2)})[0]
            if other.shape[0] != 2 * len(x):
                raise ValueError("the exported graph does not take another batch size")
        size = tmp.stat().st_size
    return {"path": str(path), "bytes": size, "opset": opset, "input_size": list(input_size),
            "output_shape": list(ref.shape[1:]), "max_abs_diff": err, "max_rel_diff": rel,
            "bn_folded": folded, "checked": True}

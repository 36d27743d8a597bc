"""ONNX export, checked in onnxruntime against PyTorch before the file is kept."""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn as nn

from cnnlab.io import atomic_path


def export_onnx(model: nn.Module, path, input_size: tuple[int, ...], *, opset: int = 17,
                dynamic_batch: bool = True, atol: float = 1e-4, seed: int = 0) -> dict:
    """Export ``model`` (eval mode) to ONNX at ``path`` and check it in onnxruntime.

    The exported graph is run on a random batch in onnxruntime and compared with PyTorch's
    output; the file is only written (atomically) if the outputs agree within ``atol``
    (relative to the output's scale). Returns a report dict.
    """
    try:
        import onnx
        import onnxruntime as ort
    except ImportError:
        raise ValueError("ONNX export needs onnx and onnxruntime: pip install 'cnnlab[onnx]'") \
            from None
    model = model.eval().cpu()
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((2, *input_size), generator=g)
    with torch.no_grad():
        expected = model(x)
    if not isinstance(expected, torch.Tensor):
        raise ValueError("ONNX export needs a model with a single tensor output in eval mode")
    with atomic_path(path) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model, (x,), str(tmp), dynamo=False, opset_version=opset,
                input_names=["input"], output_names=["output"],
                dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}
                if dynamic_batch else None)
        onnx.checker.check_model(str(tmp))
        sess = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        got = sess.run(None, {"input": x.numpy()})[0]
        ref = expected.numpy()
        scale = max(float(np.abs(ref).max()), 1.0)
        err = float(np.abs(got - ref).max())
        if got.shape != ref.shape or err > atol * scale:
            raise ValueError(f"onnxruntime disagrees with PyTorch (max difference "
                             f"{err / scale:.3g} relative to the output's scale); not writing "
                             "the file")
        size = tmp.stat().st_size
    return {"path": str(path), "bytes": size, "opset": opset, "input_size": list(input_size),
            "output_shape": list(ref.shape[1:]), "max_abs_diff": err,
            "max_rel_diff": err / scale, "checked": True}

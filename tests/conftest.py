import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Tests run many tiny ops: extra intra-op threads only add contention on 2 cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def meta_model():
    """``meta_model(name)``: the registered model built on the meta device once per test run,
    in evaluation mode, for tests that only read it (the deepest take seconds to build)."""
    from cnnlab.profile import build_on_meta

    built = {}

    def get(name):
        if name not in built:
            built[name] = build_on_meta(name).eval()
        return built[name]

    return get


@pytest.fixture(scope="session", autouse=True)
def shape_only_batch_norm_on_meta():
    """Batch norm of a plain meta tensor is answered from shapes alone.

    PyTorch runs batch norm on the meta device through its Python decomposition, ~10 ms a
    call: most of the time of the registry-wide shape tests (ResNet-1202 has 1,201 of them).
    On meta there is no value to compute, so this keeps exactly what the meta kernel checks
    (running statistics, weight and bias of the input's channel count; at least 2-D input)
    and returns its output, an empty tensor of the input's shape. Real tensors, tensor
    subclasses and calls under a TorchFunctionMode (the profiler) take PyTorch's path."""
    import torch.nn.functional as F

    real = F.batch_norm

    def batch_norm(input, running_mean, running_var, weight=None, bias=None,
                   training=False, momentum=0.1, eps=1e-5):
        if (type(input) is not torch.Tensor or not input.is_meta
                or torch._C._is_torch_function_mode_enabled()):
            return real(input, running_mean, running_var, weight, bias, training, momentum,
                        eps)
        if input.dim() < 2:
            raise ValueError(f"batch_norm: expected at least 2-D input, got {input.dim()}-D")
        c = input.shape[1]
        for name, t in (("running_mean", running_mean), ("running_var", running_var),
                        ("weight", weight), ("bias", bias)):
            if t is not None and tuple(t.shape) != (c,):
                raise RuntimeError(f"batch_norm: {name} of shape {tuple(t.shape)} for an "
                                   f"input of {c} channels")
        if training and input.numel() // c <= 1:  # F.batch_norm's _verify_batch_size
            raise ValueError("Expected more than 1 value per channel when training, got "
                             f"input size {input.size()}")
        return torch.empty_like(input)

    batch_norm.real = real
    F.batch_norm = batch_norm
    yield
    F.batch_norm = real

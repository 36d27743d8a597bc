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

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Tests run many tiny ops: extra intra-op threads only add contention on 2 cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread_torch():
    """Tests use tiny tensors: more threads only add overhead on the shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

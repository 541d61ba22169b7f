import os

import pytest
import torch


def pytest_configure(config):
    """Under pytest-xdist (the README's `-n auto`) the test processes already fill the cores:
    one torch thread in each, and in the runs a test starts, or they oversubscribe them. xdist
    also sets COLUMNS=80 in its workers; the tests read the CLI's output as piped (unwrapped),
    as without xdist."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        os.environ.pop("COLUMNS", None)
        torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def pytest_runtest_setup(item):
    if "gpu" in item.keywords and not torch.cuda.is_available():
        pytest.skip("needs CUDA")

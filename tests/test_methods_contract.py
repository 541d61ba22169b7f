"""One contract, run over every built-in method: the check `sgbench check-method` ships."""
import pytest

from sgbench.registry import builtin_names, load_method
from sgbench.testing import CHECKS, check_method

METHODS = builtin_names()


@pytest.mark.parametrize("name", METHODS)
def test_describes_itself(name):
    info = load_method(name).describe()
    assert info["citation"] and info["kinds"] and info["fidelity"] in (
        "official-code", "paper", "reconstruction")


@pytest.mark.parametrize("name", METHODS)
def test_passes_every_contract_check(name):
    checks = check_method(load_method(name))
    assert [c.name for c in checks] == [name for name, _ in CHECKS]
    failed = [f"{c.name}: {c.detail}" for c in checks if not c.ok]
    assert not failed, failed

"""What a record says about the machine and the software: versions, processor or GPU, threads,
the sgbench checkout's commit (never the hostname)."""
from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from . import __version__
from .alloc import allocator_tuned


def _package_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_state() -> dict[str, Any]:
    """Commit and dirty flag of the sgbench source tree, when it is a git checkout."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                                 timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def device_name(device) -> str:
    if device.type == "cuda":
        import torch

        return torch.cuda.get_device_name(device)
    return _cpu_name()


def capture_env(device, neuron_backend: str) -> dict[str, Any]:
    """What a record stores about the machine and software (never the hostname)."""
    import torch

    return {
        "sgbench": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "spikingjelly": _package_version("spikingjelly"),
        "numpy": _package_version("numpy"),
        "platform": f"{platform.system()} {platform.release()} {platform.machine()}",
        "device": str(device),
        "device_name": device_name(device),
        "cuda": torch.version.cuda if device.type == "cuda" else None,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "allocator_tuned": allocator_tuned(),
        "neuron_backend": neuron_backend,
        "git": git_state(),
    }

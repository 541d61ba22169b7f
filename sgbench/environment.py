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


# the widest vector instructions first: (LLVM feature, name, bits)
VECTOR_ISAS = (("avx512f", "AVX-512", 512), ("avx2", "AVX2", 256), ("avx", "AVX", 256),
               ("sse2", "SSE2", 128), ("neon", "NEON", 128))


def cpu_vectors() -> dict[str, Any]:
    """What the numba kernels are compiled for: LLVM's name of the host processor (znver4,
    sapphirerapids, ...) and its widest vector instructions, as the compiler sees them (a
    virtual machine may hide some the processor has)."""
    try:
        from llvmlite import binding
        name, features = binding.get_host_cpu_name(), binding.get_host_cpu_features()
    except Exception:  # llvmlite missing or failing: say nothing rather than guess
        return {"cpu_arch": None, "vector_isa": None, "vector_bits": None}
    isa, bits = next(((isa, bits) for feature, isa, bits in VECTOR_ISAS if features.get(feature)),
                     (None, None))
    return {"cpu_arch": name, "vector_isa": isa, "vector_bits": bits}


def machine_label(env: dict[str, Any]) -> str:
    """The device as a title names it: a GPU's name, or the processor with what its kernels are
    compiled for ("AMD EPYC (znver4, AVX2)")."""
    name = env.get("device_name") or env.get("device") or "—"
    if str(env.get("device", "cpu")).startswith("cpu") and env.get("cpu_arch"):
        return f"{name} ({env['cpu_arch']}, {env.get('vector_isa') or 'no vector ISA'})"
    return name


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
        **cpu_vectors(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "allocator_tuned": allocator_tuned(),
        "neuron_backend": neuron_backend,
        "git": git_state(),
    }

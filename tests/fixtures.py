"""Tiny datasets written in each library's real on-disk format, for the real loaders."""
from __future__ import annotations

import pickle
import struct
import textwrap
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sgbench.neuron.shapes import Shape

RNG = np.random.default_rng(0)

# A plugin's own surrogate (a Gaussian), torch functions only: the cupy backend runs it through
# the precomputed-surrogate kernels.
GAUSS = Shape("gauss", ("sigma",),
              lambda x, s: torch.exp(-x**2 / (2 * s**2)) / (s * 2.5066282746310002),
              lambda x, s: 0.5 * (1 + torch.erf(x / (s * 1.4142135623730951))),
              lambda s: (-float("inf"), float("inf")))


def cifar(root: Path, classes: int, per_file: int = 2) -> None:
    """The python pickle batches of CIFAR-10 (classes=10) or CIFAR-100 (classes=100)."""
    def batch(n):
        data = RNG.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in RNG.integers(0, classes, n)]
        key = "labels" if classes == 10 else "fine_labels"
        return {"data": data, key: labels}

    if classes == 10:
        folder = root / "cifar-10-batches-py"
        files = {f"data_batch_{i}": batch(per_file) for i in range(1, 6)}
        files["test_batch"] = batch(per_file)
        files["batches.meta"] = {"label_names": [f"c{i}" for i in range(10)]}
    else:
        folder = root / "cifar-100-python"
        files = {"train": batch(per_file * 2), "test": batch(per_file),
                 "meta": {"fine_label_names": [f"c{i}" for i in range(100)]}}
    folder.mkdir(parents=True)
    for name, content in files.items():
        (folder / name).write_bytes(pickle.dumps(content, protocol=2))


def mnist(root: Path, folder: str, n_train: int = 4, n_test: int = 4) -> None:
    """The four idx files (big-endian magic 2051 images / 2049 labels) under <folder>/raw."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = RNG.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = RNG.integers(0, 10, n).astype(np.uint8)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(
            struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(
            struct.pack(">II", 2049, n) + labels.tobytes())


def image_folder(root: Path, folder: str, classes: int = 2, per_class: int = 2,
                 size: int = 40) -> None:
    for split in ("train", "val"):
        for c in range(classes):
            d = root / folder / split / f"n{c:08d}"
            d.mkdir(parents=True)
            for i in range(per_class):
                pixels = RNG.integers(0, 256, (size, size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(d / f"img_{i}.png")


def _events(path: Path, size: int, n: int = 400) -> None:
    np.savez(path, t=np.sort(RNG.integers(0, 100_000, n)).astype(np.int64),
             x=RNG.integers(0, size, n).astype(np.uint16),
             y=RNG.integers(0, size, n).astype(np.uint16),
             p=RNG.integers(0, 2, n).astype(np.uint8))


def events(root: Path, size: int, classes: list[str], per_class: int,
           splits: tuple[str, ...] = ("train", "test"), stem: str = "sample") -> None:
    """SpikingJelly's converted event tree: events_np/[split/]<class>/*.npz with t, x, y, p."""
    for split in splits or ("",):
        for name in classes:
            d = root / "events_np" / split / name
            d.mkdir(parents=True)
            for i in range(per_class):
                _events(d / f"{stem}_{name}_{i}.npz", size)


def spiking_audio(root: Path, name: str, splits: tuple[str, ...], classes: int,
                  per_split: int = 4, n: int = 300) -> None:
    """SHD/SSC's HDF5 files, as Zenke's lab ships them: <root>/<name>/events_h5/<name>_<split>.h5
    with spikes/times (float16 seconds, sorted), spikes/units (uint16 0-699) and labels."""
    import h5py

    folder = root / name / "events_h5"
    folder.mkdir(parents=True)
    for split in splits:
        with h5py.File(folder / f"{name}_{split}.h5", "w") as f:
            times = f.create_dataset("spikes/times", (per_split,),
                                     dtype=h5py.vlen_dtype(np.float16))
            units = f.create_dataset("spikes/units", (per_split,),
                                     dtype=h5py.vlen_dtype(np.uint16))
            for i in range(per_split):
                times[i] = np.sort(RNG.uniform(0, 1.2, n)).astype(np.float16)
                units[i] = RNG.integers(0, 700, n).astype(np.uint16)
            f["labels"] = (np.arange(per_split) % classes).astype(np.uint16)


def method_file(folder: Path, name: str, body: str, params: str = "") -> Path:
    """A one-file method (atan surrogate, parameter alpha and the lines ``params``) whose class
    gets the extra methods in ``body``."""
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent('''
        from dataclasses import dataclass
        import torch
        from sgbench.api import FixedSurrogate

        class Probe(FixedSurrogate):
            citation = "test"
            shape = "atan"

            @dataclass
            class Params:
                alpha: float = 2.0
    ''') + textwrap.indent(textwrap.dedent(params), " " * 8)
        + textwrap.indent(textwrap.dedent(body), "    "))
    return path


def wait_for(condition, what: str, process=None, limit: float = 1800) -> None:
    """Wait on an event (a file, a line of output), not on a deadline load can miss: the limit
    is generous and only guards against a hang; a watched process that ends first fails at once."""
    import time

    start = time.monotonic()
    while not condition():
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the process ended (exit {process.returncode}) before {what}")
        if time.monotonic() - start > limit:
            raise AssertionError(f"no {what} after {limit:.0f} s")
        time.sleep(0.1)


def plugin_package(root: Path, entry_name: str = "gauss", scale: float = 1.0) -> Path:
    """An installed-looking plugin package under ``root`` (put ``root`` on PYTHONPATH): package
    ``my_sg`` with the Gaussian formula in a sibling module ``shapes.py`` (``scale`` multiplies
    it), the method in ``method.py``, and a dist-info whose entry point ``entry_name`` names it."""
    package = root / "my_sg"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text("")
    (package / "shapes.py").write_text(textwrap.dedent(f'''
        import math
        import torch
        from sgbench.api import Shape

        def grad(x, sigma):
            g = torch.exp(-x * x / (2 * sigma * sigma)) / (sigma * math.sqrt(2 * math.pi))
            return {scale} * g

        def primitive(x, sigma):
            return {scale} * 0.5 * (1 + torch.erf(x / (sigma * math.sqrt(2))))

        def support(sigma):
            return float("-inf"), float("inf")

        GAUSS = Shape("my_gauss", ("sigma",), grad, primitive, support, "Gaussian")
    '''))
    (package / "method.py").write_text(textwrap.dedent(f'''
        from dataclasses import dataclass
        from sgbench.api import FixedSurrogate, param
        from my_sg.shapes import GAUSS

        class Gauss(FixedSurrogate):
            name = "{entry_name}"
            citation = "test plugin"
            shape = GAUSS

            @dataclass
            class Params:
                sigma: float = param(0.5, gt=0)
    '''))
    info = root / "my_sg-0.1.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-sg\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        f"[sgbench.methods]\n{entry_name} = my_sg.method:Gauss\n")
    return package

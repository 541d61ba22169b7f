"""Event-camera datasets through SpikingJelly's loaders, integrated into T frames per sample
(``data_type='frame'``, ``split_by='number'``): CIFAR10-DVS, DVS128 Gesture and N-MNIST.

Frames are [T, 2, H, W] event counts per polarity. They are resized (bilinear, antialiased; TET
resized through PIL) and augmented as in the MPD-AGL code (docs/methods.md, 1.6): horizontal flip
with probability 0.5 and a cyclic roll of up to +-5 pixels, drawn independently in H and W.
"""
from __future__ import annotations

import hashlib
import importlib
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import Subset

from ..errors import UserError
from . import DataBundle
from .location import DataContext, require


def spikingjelly_dataset_modules(*names: str) -> list[ModuleType]:
    """``spikingjelly.datasets.<name>`` for each name.

    ``spikingjelly.datasets``'s ``__init__`` imports every dataset module, speech ones among them,
    and so torchaudio, which refuses to load when its CUDA build differs from torch's (as pip
    resolves them today). When that happens the package is registered without running its
    ``__init__`` and only the modules named are imported.
    """
    try:
        import spikingjelly.datasets  # noqa: F401
    except (ImportError, RuntimeError, OSError):
        import spikingjelly

        sys.modules.pop("spikingjelly.datasets", None)
        package = ModuleType("spikingjelly.datasets")
        package.__path__ = [str(Path(spikingjelly.__file__).parent / "datasets")]
        sys.modules["spikingjelly.datasets"] = package
    return [importlib.import_module(f"spikingjelly.datasets.{name}") for name in names]


def _spikingjelly_datasets() -> SimpleNamespace:
    """SpikingJelly's CIFAR10DVS, CIFAR10DVSTEBNSplit, DVS128Gesture and NMNIST."""
    modules = spikingjelly_dataset_modules("cifar10_dvs", "dvs128_gesture", "n_mnist")
    return SimpleNamespace(CIFAR10DVS=modules[0].CIFAR10DVS,
                           CIFAR10DVSTEBNSplit=modules[0].CIFAR10DVSTEBNSplit,
                           DVS128Gesture=modules[1].DVS128Gesture, NMNIST=modules[2].NMNIST)


class EventFrames:
    """ndarray [T, C, H, W] -> float tensor, resized to ``size``, optionally flipped and rolled."""

    def __init__(self, size: int | None, flip: bool = False, roll: int = 0):
        self.size, self.flip, self.roll = size, flip, roll

    def __call__(self, frames) -> torch.Tensor:
        x = torch.as_tensor(frames, dtype=torch.float32)
        if self.size is not None and x.shape[-1] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True)
        if self.flip and torch.rand(()) < 0.5:
            x = x.flip(-1)
        if self.roll:
            dh, dw = torch.randint(-self.roll, self.roll + 1, (2,)).tolist()
            x = torch.roll(x, shifts=(dh, dw), dims=(-2, -1))
        return x


def _check_raw(name: str, cls, ctx: DataContext, how: str) -> Path:
    """The dataset folder, after checking that SpikingJelly will find its events or archives."""
    root = ctx.root / name
    if (root / "events_np").is_dir() or (ctx.download and cls.downloadable()):
        return root
    archives = [file for file, _, _ in cls.resource_url_md5()]
    if (root / "download").is_dir() and all((root / "download" / f).exists() for f in archives):
        return root
    shown = ", ".join(archives[:4]) + (f" and {len(archives) - 4} more" if len(archives) > 4
                                       else "")
    require(name, root, ["events_np or download/" + archives[0]],
            f"Expected events_np/ (SpikingJelly's converted events) or download/ with {shown}. "
            f"{how}")
    raise UserError(f"{name}: {root / 'download'} lacks some of {shown}. {how}")


def _frames(cls, root: Path, T: int, transform, **kwargs):
    return cls(root, data_type="frame", frames_number=T, split_by="number",
               transform=transform, **kwargs)


def _meta(source: str, split: dict[str, Any], T: int, size, flip, roll) -> dict[str, Any]:
    return {"source": source, "split": split,
            "frames": {"T": T, "split_by": "number", "size": size},
            "augment": {"flip": flip, "roll": roll}, "normalisation": None}


def _per_class_split(targets: list[int], fraction: float, seed: int):
    """Seeded per-class split: ``fraction`` of each class for training, the rest for testing."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.as_tensor(targets)
    train, test = [], []
    for c in labels.unique().tolist():
        idx = (labels == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=generator)]
        cut = min(max(round(fraction * len(idx)), 1), len(idx) - 1) if len(idx) > 1 else 1
        train += idx[:cut].tolist()
        test += idx[cut:].tolist()
    return sorted(train), sorted(test)


def cifar10_dvs(ctx: DataContext, split: str = "random", split_seed: int = 0,
                train_fraction: float = 0.9, size: int = 48, flip: bool = True,
                roll: int = 5) -> DataBundle:
    """``split=random``: seeded per-class 9:1; ``split=tebn``: per class samples 0-99 are the
    test set (TEBN, NeurIPS 2022), which gives much higher accuracies: never compare across."""
    if split not in ("random", "tebn"):
        raise UserError(f"cifar10_dvs split must be random or tebn; got '{split}'")
    sj = _spikingjelly_datasets()
    root = _check_raw("cifar10_dvs", sj.CIFAR10DVS, ctx,
                      "Run with --download to fetch it with SpikingJelly's CIFAR10DVS.")
    train_tf, test_tf = EventFrames(size, flip, roll), EventFrames(size)
    if split == "tebn":
        train = _frames(sj.CIFAR10DVSTEBNSplit, root, ctx.T, train_tf, train=True)
        test = _frames(sj.CIFAR10DVSTEBNSplit, root, ctx.T, test_tf, train=False)
        info = {"kind": "tebn", "n_train": len(train), "n_test": len(test)}
    else:
        full_train = _frames(sj.CIFAR10DVS, root, ctx.T, train_tf)
        full_test = _frames(sj.CIFAR10DVS, root, ctx.T, test_tf)
        train_idx, test_idx = _per_class_split(full_train.targets, train_fraction, split_seed)
        train, test = Subset(full_train, train_idx), Subset(full_test, test_idx)
        info = {"kind": "random per class", "seed": split_seed, "train_fraction": train_fraction,
                "n_train": len(train_idx), "n_test": len(test_idx),
                "test_indices_sha256": hashlib.sha256(str(test_idx).encode()).hexdigest()}
    meta = _meta("spikingjelly.datasets.CIFAR10DVS", info, ctx.T, size, flip, roll)
    return DataBundle(train, test, 10, (2, size, size), meta)


def _official_split(name: str, cls, classes: int, hw: int, ctx: DataContext, how: str,
                    size: int | None, flip: bool, roll: int) -> DataBundle:
    root = _check_raw(name, cls, ctx, how)
    train = _frames(cls, root, ctx.T, EventFrames(size, flip, roll), train=True)
    test = _frames(cls, root, ctx.T, EventFrames(size), train=False)
    side = size or hw
    info = {"kind": "official", "n_train": len(train), "n_test": len(test)}
    meta = _meta(f"spikingjelly.datasets.{cls.__name__}", info, ctx.T, side, flip, roll)
    return DataBundle(train, test, classes, (2, side, side), meta)


def dvs128_gesture(ctx: DataContext, size: int | None = None, flip: bool = False,
                   roll: int = 0) -> DataBundle:
    return _official_split(
        "dvs128_gesture", _spikingjelly_datasets().DVS128Gesture, 11, 128, ctx,
        "It cannot be downloaded automatically (licence): put DvsGesture.tar.gz, "
        "gesture_mapping.csv, LICENSE.txt and README.txt from IBM's download page there.",
        size, flip, roll)


def nmnist(ctx: DataContext, size: int | None = None, flip: bool = False,
           roll: int = 0) -> DataBundle:
    return _official_split(
        "nmnist", _spikingjelly_datasets().NMNIST, 10, 34, ctx,
        "It cannot be downloaded automatically: put Train.zip and Test.zip from "
        "garrickorchard.com/datasets/n-mnist there.", size, flip, roll)

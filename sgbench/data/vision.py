"""Static-image datasets: MNIST and Fashion-MNIST from their idx files (read in place),
CIFAR-10/100 through torchvision's reader of the pickled batches (official train/test splits),
all three held as tensors (``tensors.TensorSplit``); ImageFolder trees for ImageNet and
Tiny-ImageNet, streamed through torchvision's per-sample transforms and a DataLoader."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision import datasets
from torchvision import transforms as tv

from ..errors import UserError
from . import DataBundle, idx
from .location import DataContext, require
from .tensors import Augment, TensorSplit

# Per-dataset normalisation: CIFAR as in the MPD-AGL/DS-ATGO and AdaLi code (docs/methods.md, 1.6);
# MNIST and ImageNet the usual torchvision values; Fashion-MNIST its training-set statistics.
NORMALISATION = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion_mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}
def _meta(source: str, train, test, normalise_as: str, normalize: bool,
          augment: dict[str, Any]) -> dict[str, Any]:
    return {"source": source, "split": {"kind": "official", "n_train": len(train),
                                         "n_test": len(test)},
            "normalisation": NORMALISATION[normalise_as] if normalize else None,
            "augment": augment}


# Where MNIST-format files may sit below a data root: torchvision's layout, the distribution
# package's folder (Debian: /usr/share/datasets/fashion-mnist) and sgbench's own name.
MNIST_FOLDERS = {"mnist": ("MNIST/raw", "mnist"),
                 "fashion_mnist": ("FashionMNIST/raw", "fashion-mnist", "fashion_mnist")}
MNIST_PACKAGES = {"fashion_mnist": "dataset-fashion-mnist"}


def _find_mnist(name: str, ctx: DataContext) -> dict[str, Path] | None:
    for root in ctx.roots():
        for folder in MNIST_FOLDERS[name]:
            found = idx.complete_folder(root / folder)
            if found:
                return found
    return None


def _mnist_files(name: str, cls, ctx: DataContext) -> dict[str, Path]:
    """The four idx files, found in place, or fetched by torchvision with --download."""
    found = _find_mnist(name, ctx)
    if found is None and ctx.download:
        for train in (True, False):
            cls(ctx.root, train=train, download=True)
        found = idx.complete_folder(ctx.root / MNIST_FOLDERS[name][0])
    if found is not None:
        return found
    searched = [str(root / folder) for root in ctx.roots() for folder in MNIST_FOLDERS[name]]
    package = MNIST_PACKAGES.get(name)
    install = f"Install it with `apt-get install {package}` (Debian, Ubuntu) or run" \
        if package else "Run"
    raise UserError(
        f"{name} data not found in {', '.join(searched)}: each needs "
        f"{', '.join(idx.FILES)} (plain or .gz). {install} with --download to fetch it with "
        f"torchvision.datasets.{cls.__name__} into {ctx.root} (choose the data folder with "
        f"--data-dir or SGBENCH_DATA)")


def _mnist_like(name: str, cls, ctx: DataContext, normalize: bool) -> DataBundle:
    files = _mnist_files(name, cls, ctx)
    mean, std = NORMALISATION[name] if normalize else (None, None)
    splits, read = {}, []
    for split in ("train", "test"):
        images, labels, files_read = idx.read_split(files, split)
        splits[split] = TensorSplit(torch.from_numpy(images.copy()).unsqueeze(1),
                                    torch.from_numpy(labels.astype(np.int64)), 1 / 255, mean, std)
        read += files_read
    meta = {**_meta("idx files, read in place", splits["train"], splits["test"], name,
                    normalize, {}), "files": read}
    return DataBundle(splits["train"], splits["test"], 10, (1, 28, 28), meta)


def mnist(ctx: DataContext, normalize: bool = True) -> DataBundle:
    return _mnist_like("mnist", datasets.MNIST, ctx, normalize)


def fashion_mnist(ctx: DataContext, normalize: bool = True) -> DataBundle:
    return _mnist_like("fashion_mnist", datasets.FashionMNIST, ctx, normalize)


def _cifar(name: str, cls, folder: str, files: list[str], classes: int, ctx: DataContext,
           crop: bool, flip: bool, autoaugment: bool, normalize: bool) -> DataBundle:
    if not ctx.download:
        require(name, ctx.root / folder, files,
                f"Run with --download to fetch it with torchvision.datasets.{cls.__name__}, or "
                f"unpack the python version of the archive (www.cs.toronto.edu/~kriz/cifar.html)"
                f" into {ctx.root}.")
    mean, std = NORMALISATION[name] if normalize else (None, None)
    augment = Augment(crop_padding=4 * crop, flip=flip, autoaugment=autoaugment)
    splits = {}
    for train in (True, False):
        raw = cls(ctx.root, train=train, download=ctx.download)  # the pickled batches, checked
        splits[train] = TensorSplit(torch.from_numpy(raw.data).permute(0, 3, 1, 2).contiguous(),
                                    torch.as_tensor(raw.targets), 1 / 255, mean, std,
                                    augment if train else Augment())
    meta = _meta(f"torchvision.datasets.{cls.__name__}", splits[True], splits[False], name,
                 normalize, {"crop": crop, "flip": flip, "autoaugment": autoaugment})
    return DataBundle(splits[True], splits[False], classes, (3, 32, 32), meta)


def cifar10(ctx: DataContext, crop: bool = True, flip: bool = True, autoaugment: bool = True,
            normalize: bool = True) -> DataBundle:
    files = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
    return _cifar("cifar10", datasets.CIFAR10, "cifar-10-batches-py", files, 10, ctx, crop, flip,
                  autoaugment, normalize)


def cifar100(ctx: DataContext, crop: bool = True, flip: bool = True, autoaugment: bool = True,
             normalize: bool = True) -> DataBundle:
    return _cifar("cifar100", datasets.CIFAR100, "cifar-100-python", ["train", "test", "meta"],
                  100, ctx, crop, flip, autoaugment, normalize)


def _image_folder(name: str, folder: str, ctx: DataContext, size: int, flip: bool,
                  normalize: bool) -> DataBundle:
    root = ctx.root / folder
    require(name, root, ["train", "val"],
            "No downloader exists for it: put the images in ImageFolder layout, "
            f"{folder}/train/<class>/*.JPEG and {folder}/val/<class>/*.JPEG.")
    augment = [tv.RandomResizedCrop(size)] + [tv.RandomHorizontalFlip()] * flip
    tail = [tv.ToTensor()] + ([tv.Normalize(*NORMALISATION["imagenet"])] if normalize else [])
    train = datasets.ImageFolder(root / "train", tv.Compose(augment + tail))
    test = datasets.ImageFolder(root / "val", tv.Compose(
        [tv.Resize(round(size * 256 / 224)), tv.CenterCrop(size)] + tail))
    meta = _meta("torchvision.datasets.ImageFolder", train, test, "imagenet", normalize,
                 {"random_resized_crop": size, "flip": flip})
    return DataBundle(train, test, len(train.classes), (3, size, size), meta)


def imagenet(ctx: DataContext, size: int = 224, flip: bool = True,
             normalize: bool = True) -> DataBundle:
    return _image_folder("imagenet", "imagenet", ctx, size, flip, normalize)


def tiny_imagenet(ctx: DataContext, size: int = 224, flip: bool = True,
                  normalize: bool = True) -> DataBundle:
    return _image_folder("tiny_imagenet", "tiny-imagenet-200", ctx, size, flip, normalize)

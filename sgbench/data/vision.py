"""Static-image datasets through torchvision's own loaders: MNIST, Fashion-MNIST, CIFAR-10/100
(official train/test splits) and ImageFolder trees for ImageNet and Tiny-ImageNet."""
from __future__ import annotations

from typing import Any, Callable

from torchvision import datasets
from torchvision import transforms as tv

from . import DataBundle
from .location import DataContext, require

# Per-dataset normalisation: CIFAR as in the MPD-AGL/DS-ATGO and AdaLi code (spec 1.6, 3.6);
# MNIST and ImageNet the usual torchvision values; Fashion-MNIST its training-set statistics.
NORMALISATION = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion_mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}
MNIST_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
               "t10k-labels-idx1-ubyte"]


def _finish(train_aug: list, normalise_as: str, normalize: bool) -> tuple[Callable, Callable]:
    tail = [tv.ToTensor()] + ([tv.Normalize(*NORMALISATION[normalise_as])] if normalize else [])
    return tv.Compose(train_aug + tail), tv.Compose(tail)


def _meta(source: str, train, test, normalise_as: str, normalize: bool,
          augment: dict[str, Any]) -> dict[str, Any]:
    return {"source": source, "split": {"kind": "official", "n_train": len(train),
                                         "n_test": len(test)},
            "normalisation": NORMALISATION[normalise_as] if normalize else None,
            "augment": augment}


def _mnist_like(name: str, cls, ctx: DataContext, normalize: bool) -> DataBundle:
    if not ctx.download:
        require(name, ctx.root / cls.__name__ / "raw", MNIST_FILES,
                f"Run with --download to fetch it with torchvision.datasets.{cls.__name__}, or "
                f"put the unpacked idx files there.")
    train_tf, test_tf = _finish([], name, normalize)
    train = cls(ctx.root, train=True, transform=train_tf, download=ctx.download)
    test = cls(ctx.root, train=False, transform=test_tf, download=ctx.download)
    meta = _meta(f"torchvision.datasets.{cls.__name__}", train, test, name, normalize, {})
    return DataBundle(train, test, 10, (1, 28, 28), meta)


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
    augment = [tv.RandomCrop(32, padding=4)] * crop + [tv.RandomHorizontalFlip()] * flip \
        + [tv.AutoAugment(tv.AutoAugmentPolicy.CIFAR10)] * autoaugment
    train_tf, test_tf = _finish(augment, name, normalize)
    train = cls(ctx.root, train=True, transform=train_tf, download=ctx.download)
    test = cls(ctx.root, train=False, transform=test_tf, download=ctx.download)
    meta = _meta(f"torchvision.datasets.{cls.__name__}", train, test, name, normalize,
                 {"crop": crop, "flip": flip, "autoaugment": autoaugment})
    return DataBundle(train, test, classes, (3, 32, 32), meta)


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

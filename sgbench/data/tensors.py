"""Small datasets held as one tensor on the training device (digits, MNIST, Fashion-MNIST, CIFAR).

A batch is an index gather; augmentation (random crop with zero padding, horizontal flip,
AutoAugment) and normalisation are batched tensor ops on the device, in torchvision's order:
augment the stored pixels, then scale and normalise. No per-sample PIL work and no loader
processes. Random draws (shuffle, crop offsets, flips) come from the loader's CPU generator, so
a run is the same on any device and resumes exactly from the generator's checkpointed state.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import torch

Tensor = torch.Tensor


@dataclass(frozen=True)
class Augment:
    """Training-time augmentation of image batches [B, C, H, W]."""

    crop_padding: int = 0  # random crop back to H x W after zero padding (RandomCrop(H, padding))
    flip: bool = False  # horizontal flip with probability 0.5 per sample
    autoaugment: bool = False  # torchvision's CIFAR-10 AutoAugment policy, per sample (uint8)

    @property
    def active(self) -> bool:
        return bool(self.crop_padding or self.flip or self.autoaugment)

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        if self.crop_padding:
            x = random_crop(x, self.crop_padding, generator)
        if self.flip:
            x = random_flip(x, generator)
        if self.autoaugment:
            x = auto_augment(x)
        return x


def random_crop(x: Tensor, padding: int, generator: torch.Generator) -> Tensor:
    """Each sample cropped at a random offset from its zero-padded copy (one gather)."""
    B, _, H, W = x.shape
    padded = torch.nn.functional.pad(x, (padding,) * 4)
    dy, dx = (torch.randint(0, 2 * padding + 1, (2, B), generator=generator)
              .to(x.device).unbind(0))
    rows = (dy[:, None] + torch.arange(H, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(W, device=x.device))[:, None, None, :]
    batch = torch.arange(B, device=x.device)[:, None, None, None]
    channel = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


def random_flip(x: Tensor, generator: torch.Generator) -> Tensor:
    flip = (torch.rand(x.shape[0], generator=generator) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def auto_augment(x: Tensor) -> Tensor:
    """torchvision's AutoAugment (CIFAR-10 policy, Cubuk et al. CVPR 2019) drawn per sample: the
    transform draws one sub-policy per call, so samples are transformed one by one (on the
    device). Its draws use torch's global generator, which checkpoints keep."""
    from torchvision.transforms import v2

    policy = v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10)
    return torch.stack([policy(sample) for sample in x])


class TensorSplit:
    """One split: stored samples ``x`` [N, ...] (uint8 pixels or floats) and labels ``y`` [N].
    A batch is ``augment(x[index]) * scale``, normalised by ``mean``/``std`` per channel."""

    def __init__(self, x: Tensor, y: Tensor, scale: float = 1.0,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 augment: Augment = Augment()):
        self.x, self.y, self.scale, self.augment = x, y.long(), scale, augment
        self.mean, self.std = mean, std

    def __len__(self) -> int:
        return len(self.y)

    @property
    def device(self) -> torch.device:
        return self.x.device

    def to(self, device: torch.device) -> "TensorSplit":
        return self._with(self.x.to(device), self.y.to(device))

    def subset(self, index: Sequence[int] | Tensor) -> "TensorSplit":
        index = torch.as_tensor(index, dtype=torch.long, device=self.device)
        return self._with(self.x[index], self.y[index])

    def _with(self, x: Tensor, y: Tensor) -> "TensorSplit":
        return TensorSplit(x, y, self.scale, self.mean, self.std, self.augment)

    def batch(self, index: Tensor, generator: torch.Generator | None = None
              ) -> tuple[Tensor, Tensor]:
        """Samples ``index`` as float input and labels; augmented when a generator is given."""
        index = index.to(self.device)
        x = self.x[index]
        if generator is not None and self.augment.active:
            x = self.augment(x, generator)
        x = x.float()
        if self.scale != 1.0:
            x = x.mul_(self.scale)
        if self.mean is not None:
            shape = (1, -1) + (1,) * (x.dim() - 2)
            mean = torch.tensor(self.mean, device=x.device).view(shape)
            std = torch.tensor(self.std, device=x.device).view(shape)
            x = x.sub_(mean).div_(std)
        return x, self.y[index]

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        """One sample, not augmented (for code that reads samples one at a time)."""
        x, y = self.batch(torch.tensor([i]))
        return x[0], y[0]


class TensorLoader:
    """Batches of a ``TensorSplit``: a seeded shuffle per pass, index gathers, batched transforms
    (augmentation only when shuffling, i.e. for training). Under data parallelism each rank takes
    every world-th sample of the same permutation (the tail that does not divide is dropped)."""

    def __init__(self, split: TensorSplit, batch_size: int, shuffle: bool = False,
                 generator: torch.Generator | None = None, drop_last: bool = False,
                 rank: int = 0, world_size: int = 1):
        self.split, self.batch_size, self.shuffle = split, batch_size, shuffle
        self.generator = generator if generator is not None else torch.Generator()
        self.drop_last, self.rank, self.world_size = drop_last, rank, world_size

    def _order(self) -> Tensor:
        n = len(self.split)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        if self.world_size > 1:
            order = order[:n - n % self.world_size][self.rank::self.world_size]
        return order

    def __len__(self) -> int:
        n = len(self.split) // self.world_size if self.world_size > 1 else len(self.split)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        order = self._order()
        augment = self.generator if self.shuffle else None
        for start in range(0, len(order), self.batch_size):
            index = order[start:start + self.batch_size]
            if self.drop_last and len(index) < self.batch_size:
                return
            yield self.split.batch(index, augment)

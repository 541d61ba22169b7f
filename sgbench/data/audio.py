"""Spiking audio: the Spiking Heidelberg Digits (SHD, 20 classes) and Spiking Speech Commands
(SSC, 35 classes) of Cramer, Stradmann, Schemmel and Zenke (IEEE TNNLS 33(7), 2022), read
through SpikingJelly's loaders (``spikingjelly.datasets.shd``, events as they are in the files).

Each file is HDF5: ``spikes/times`` (seconds) and ``spikes/units`` (0-699, the artificial
cochlea's channels) per sample, ``labels``. A sample becomes T frames of ``bin_ms`` each,
counted per channel ([T, channels]; T is the run's): events after T * bin_ms are dropped, and
``channels`` < 700 sums neighbouring cochlea channels (unit u -> u * channels // 700), as many
SHD papers pool the input. SSC's validation split is not used: training on train, testing on
test.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import UserError
from . import DataBundle
from .location import DataContext, require
from .neuromorphic import spikingjelly_dataset_modules

COCHLEA_CHANNELS = 700
MAX_BIN_MS = 1000.0


class EventBins:
    """SpikingJelly's event dict {t: seconds, x: unit} -> [T, channels] float counts."""

    def __init__(self, T: int, bin_ms: float, channels: int):
        self.T, self.bin_ms, self.channels = T, bin_ms, channels

    def __call__(self, events: dict[str, np.ndarray]) -> torch.Tensor:
        step = np.floor(np.asarray(events["t"], dtype=np.float64) * 1000.0 / self.bin_ms)
        channel = np.asarray(events["x"], dtype=np.int64) * self.channels // COCHLEA_CHANNELS
        kept = (step >= 0) & (step < self.T)
        flat = step[kept].astype(np.int64) * self.channels + channel[kept]
        counts = np.bincount(flat, minlength=self.T * self.channels)
        return torch.from_numpy(counts.reshape(self.T, self.channels).astype(np.float32))


def shd(ctx: DataContext, bin_ms: float = 10.0, channels: int = 700) -> DataBundle:
    """SHD: 8,156 training and 2,264 test samples (official split: two test speakers unseen)."""
    (module,) = spikingjelly_dataset_modules("shd")
    root = _check_files("shd", ["shd_train.h5", "shd_test.h5"], ctx,
                        "Run with --download to fetch them with SpikingJelly "
                        "(zenkelab.org/datasets), or unzip shd_train.h5.zip and shd_test.h5.zip "
                        "there.")
    frames = _binning(ctx, bin_ms, channels)
    open_split = lambda train: module.SpikingHeidelbergDigits(  # noqa: E731
        str(root), train=train, data_type="event", transform=frames, target_transform=int)
    return _bundle("SpikingHeidelbergDigits", open_split(True), open_split(False),
                   module.SHD_N_CLASSES, frames)


def ssc(ctx: DataContext, bin_ms: float = 10.0, channels: int = 700) -> DataBundle:
    """SSC: 75,466 training and 20,382 test samples (official split)."""
    (module,) = spikingjelly_dataset_modules("shd")
    # SpikingJelly 2.0.0's SpikingSpeechCommands lists SHD's archives as its download: refuse
    # --download rather than fetch the wrong dataset
    root = _check_files("ssc", ["ssc_train.h5", "ssc_valid.h5", "ssc_test.h5"], ctx,
                        "They cannot be downloaded by sgbench (SpikingJelly 2.0.0's SSC "
                        "downloader fetches SHD's archives): unzip ssc_train.h5.zip, "
                        "ssc_valid.h5.zip and ssc_test.h5.zip from zenkelab.org/datasets there.",
                        downloadable=False)
    frames = _binning(ctx, bin_ms, channels)
    open_split = lambda split: module.SpikingSpeechCommands(  # noqa: E731
        str(root), split=split, data_type="event", transform=frames, target_transform=int)
    return _bundle("SpikingSpeechCommands", open_split("train"), open_split("test"),
                   module.SSC_N_CLASSES, frames)


def _check_files(name: str, files: list[str], ctx: DataContext, how: str,
                 downloadable: bool = True) -> Path:
    """The dataset's folder (SpikingJelly reads ``<folder>/events_h5/``), after checking that
    the HDF5 files are there (or that SpikingJelly may download them)."""
    root = ctx.root / name
    if not (downloadable and ctx.download):
        require(name, root / "events_h5", files, how)
    return root


def _binning(ctx: DataContext, bin_ms: float, channels: int) -> EventBins:
    if not 0 < bin_ms <= MAX_BIN_MS:
        raise UserError(f"data.bin_ms must be in (0, {MAX_BIN_MS:g}] milliseconds; got {bin_ms}")
    if not 1 <= channels <= COCHLEA_CHANNELS:
        raise UserError(f"data.channels must be 1-{COCHLEA_CHANNELS}; got {channels}")
    return EventBins(ctx.T, float(bin_ms), channels)


def _bundle(source: str, train, test, classes: int, frames: EventBins) -> DataBundle:
    meta: dict[str, Any] = {
        "source": f"spikingjelly.datasets.shd.{source}",
        "split": {"kind": "official", "n_train": len(train), "n_test": len(test)},
        "frames": {"T": frames.T, "bin_ms": frames.bin_ms, "channels": frames.channels,
                   "window_ms": frames.T * frames.bin_ms},
        "normalisation": None}
    return DataBundle(train, test, classes, (frames.channels,), meta)

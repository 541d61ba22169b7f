"""Per-epoch logs where people look (``--log csv,tb``): a CSV file and TensorBoard event files
beside the record, named after the run's key. TensorBoard needs the ``tensorboard`` package,
which sgbench does not require."""
from __future__ import annotations

import csv
import importlib.util
from pathlib import Path
from typing import Any

from ..errors import UsageError, UserError
from ..progress import Reporter

KINDS = ("csv", "tb")
COLUMNS = ("epoch", "lr", "train_loss", "train_top1", "test_loss", "test_top1", "epoch_time_s")


def check_logs(kinds: list[str]) -> None:
    """Before anything runs: known kinds, and TensorBoard installed when asked for."""
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise UsageError(f"--log takes {', '.join(KINDS)} (separated by commas); got "
                         f"{', '.join(unknown)}")
    if "tb" in kinds and importlib.util.find_spec("tensorboard") is None:
        raise UsageError("--log tb needs TensorBoard: pip install tensorboard")


class CsvLog(Reporter):
    """One row per epoch; a resumed run appends to the rows it wrote before, replacing those of
    the epochs it repeats (a stop after an epoch was logged but before its checkpoint)."""

    def __init__(self, path: Path):
        self.path = path
        if path.is_symlink() or (path.exists() and not path.is_file()):  # before training
            what = "it is a link (a link is never followed)" if path.is_symlink() else \
                "a folder or special file has its name"
            raise UserError(f"cannot write the per-epoch log {path}: {what}")

    def epoch(self, entry: dict[str, Any]) -> None:
        from ..files import open_new_or_own

        kept = self._rows_before(entry["epoch"])
        with open_new_or_own(self.path, "a" if kept is None else "w") as fh:
            writer = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore")
            if kept is not None:
                writer.writeheader()
                writer.writerows(kept)
            writer.writerow(entry)

    def _rows_before(self, epoch: int) -> list[dict[str, str]] | None:
        """The rows of earlier epochs when the file must be rewritten (it is new, or holds this
        epoch or later ones); None when appending is right."""
        if self.path.is_symlink():
            raise UserError(f"cannot write {self.path}: it is a link (a link is never followed)")
        if not self.path.is_file():
            return []
        with open(self.path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        earlier = [row for row in rows
                   if row.get("epoch", "").isdigit() and int(row["epoch"]) < epoch]
        return None if len(earlier) == len(rows) else earlier


class TensorBoardLog(Reporter):
    def __init__(self, folder: Path):
        from torch.utils.tensorboard import SummaryWriter

        if folder.is_symlink() or folder.exists() and not folder.is_dir():
            raise UserError(f"--log tb: {folder} is a link or a file; sgbench writes event "
                            f"files only into a folder of its own there")
        self.writer = SummaryWriter(str(folder))

    def epoch(self, entry: dict[str, Any]) -> None:
        step = entry["epoch"]
        for key in COLUMNS[1:]:
            if entry.get(key) is not None:
                self.writer.add_scalar(key.replace("_", "/", 1), entry[key], step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class Fanout(Reporter):
    """Every hook to each of several reporters."""

    def __init__(self, reporters: list[Reporter]):
        self.reporters = reporters

    def _all(self, hook: str, *args) -> None:
        for reporter in self.reporters:
            getattr(reporter, hook)(*args)

    def note(self, text):
        self._all("note", text)

    def start(self, epochs, first=0):
        self._all("start", epochs, first)

    def batch(self, done, total, loss, top1, lr, samples=None):
        self._all("batch", done, total, loss, top1, lr, samples)

    def epoch(self, entry):
        self._all("epoch", entry)

    def phase(self, name):
        self._all("phase", name)

    def close(self):
        self._all("close")


def with_logs(reporter: Reporter, kinds: list[str], folder: Path, key: str) -> Reporter:
    logs: list[Reporter] = []
    if "csv" in kinds:
        logs.append(CsvLog(folder / f"{key}.epochs.csv"))
    if "tb" in kinds:
        logs.append(TensorBoardLog(folder / f"{key}.tb"))
    return Fanout([reporter, *logs]) if logs else reporter

"""Where datasets live, and the one error for data that is not there.

The root is ``--data-dir``, else ``$SGBENCH_DATA``, else ``$XDG_CACHE_HOME/sgbench/data`` (by
default ``~/.cache/sgbench/data``). Nothing is downloaded unless ``--download`` is given.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError


def default_data_root() -> Path:
    if os.environ.get("SGBENCH_DATA"):
        return Path(os.environ["SGBENCH_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "sgbench" / "data"


@dataclass
class DataContext:
    root: Path  # the data root; each dataset has its own folder or files below it
    download: bool = False  # let the library's downloader fetch what is missing
    T: int = 1  # timesteps, for event data integrated into T frames

    @classmethod
    def resolve(cls, data_dir: str | Path | None, download: bool, T: int) -> "DataContext":
        root = Path(data_dir).expanduser() if data_dir else default_data_root()
        return cls(root, download, T)


def require(dataset: str, folder: Path, expected: list[str], how: str) -> None:
    """Stop before any training when ``folder`` lacks every one of ``expected`` (a path relative
    to ``folder``; alternatives are separated by ' or ')."""
    missing = [name for name in expected
               if not any((folder / alt.strip()).exists() for alt in name.split(" or "))]
    if missing:
        raise UserError(
            f"{dataset} data not found in {folder}: missing {', '.join(missing)}. {how} "
            f"(choose the data folder with --data-dir or SGBENCH_DATA)")

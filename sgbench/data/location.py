"""Where datasets live, and the one error for data that is not there.

The data root is ``--data-dir``, else ``$SGBENCH_DATA``, else ``$XDG_CACHE_HOME/sgbench/data``
(by default ``~/.cache/sgbench/data``): downloads go there. Datasets that distributions package
are also looked for, read in place, in the system dataset folders (Debian's ``dataset-*``
packages install under /usr/share/datasets). Nothing is downloaded unless ``--download`` is given.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError

SYSTEM_DATA_ROOTS = (Path("/usr/local/share/datasets"), Path("/usr/share/datasets"))


def system_data_roots() -> tuple[Path, ...]:
    """The system dataset folders; ``$SGBENCH_SYSTEM_DATA`` (folders separated by ':', empty for
    none) replaces them."""
    if "SGBENCH_SYSTEM_DATA" in os.environ:
        return tuple(Path(p).expanduser() for p in
                     os.environ["SGBENCH_SYSTEM_DATA"].split(os.pathsep) if p)
    return SYSTEM_DATA_ROOTS


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
    system_roots: tuple[Path, ...] = field(default_factory=system_data_roots)

    @classmethod
    def resolve(cls, data_dir: str | Path | None, download: bool, T: int) -> "DataContext":
        root = Path(data_dir).expanduser() if data_dir else default_data_root()
        return cls(root, download, T)

    def roots(self) -> list[Path]:
        """The data root first, then the system dataset folders."""
        return [self.root] + [r for r in self.system_roots if r != self.root]


def require(dataset: str, folder: Path, expected: list[str], how: str) -> None:
    """Stop before any training when ``folder`` lacks every one of ``expected`` (a path relative
    to ``folder``; alternatives are separated by ' or ')."""
    missing = [name for name in expected
               if not any((folder / alt.strip()).exists() for alt in name.split(" or "))]
    if missing:
        raise UserError(
            f"{dataset} data not found in {folder}: missing {', '.join(missing)}. {how} "
            f"(choose the data folder with --data-dir or SGBENCH_DATA)")

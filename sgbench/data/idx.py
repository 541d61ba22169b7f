"""The idx file format of MNIST and Fashion-MNIST, read in place, gzipped or not.

An idx file is a big-endian header, magic ``0x0000TTDD`` (TT the element type, 0x08 for uint8;
DD the number of dimensions), then one uint32 size per dimension, then the data (LeCun et al.,
http://yann.lecun.com/exdb/mnist/). The same four files serve both datasets; distributions ship
them gzipped (Debian's ``dataset-fashion-mnist`` in /usr/share/datasets/fashion-mnist), torchvision
unpacks them under ``<Class>/raw/``.
"""
from __future__ import annotations

import gzip
import hashlib
import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import UserError

UBYTE = 0x08
SPLIT_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
FILES = [name for pair in SPLIT_FILES.values() for name in pair]


def parse_idx(data: bytes, where: str) -> np.ndarray:
    """The array of one idx file's bytes; a malformed file is a UserError naming it."""
    if len(data) < 4:
        raise UserError(f"{where} is not an idx file: {len(data)} bytes")
    zero, kind, dims = struct.unpack(">HBB", data[:4])
    if zero != 0 or kind != UBYTE or not 1 <= dims <= 4:
        raise UserError(f"{where} is not an unsigned-byte idx file (magic "
                        f"{data[:4].hex()}, expected 0000080N)")
    header = 4 + 4 * dims
    if len(data) < header:
        raise UserError(f"{where}: truncated idx header")
    shape = struct.unpack(f">{dims}I", data[4:header])
    expected = header + int(np.prod(shape, dtype=np.int64))
    if len(data) != expected:
        raise UserError(f"{where}: {len(data)} bytes where shape {shape} needs {expected}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def read_idx(path: Path) -> tuple[np.ndarray, str]:
    """The array in ``path`` (gzipped when it ends in .gz) and the sha256 of the file as stored."""
    try:
        stored = Path(path).read_bytes()
        data = gzip.decompress(stored) if Path(path).suffix == ".gz" else stored
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise UserError(f"cannot read idx file {path}: {exc}") from None
    return parse_idx(data, str(path)), hashlib.sha256(stored).hexdigest()


def find_file(folder: Path, name: str) -> Path | None:
    """``name`` or ``name.gz`` in ``folder`` (torchvision's unpacked or the distribution's)."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def complete_folder(folder: Path) -> dict[str, Path] | None:
    """The four idx files in ``folder``, each plain or gzipped; None when none is there, and an
    error naming the missing ones when only some are (never a silent fall back elsewhere)."""
    found = {name: find_file(folder, name) for name in FILES}
    if all(found.values()):
        return found
    if any(found.values()):
        missing = ", ".join(name for name, path in found.items() if path is None)
        raise UserError(f"{folder} holds some of the idx files but not {missing} (plain or "
                        f".gz): complete it, or remove it to use another copy")
    return None


def read_split(files: dict[str, Path], split: str) -> tuple[np.ndarray, np.ndarray,
                                                              list[dict[str, str]]]:
    """Images [N, 28, 28], labels [N] and what was read (path, sha256) of one split."""
    image_name, label_name = SPLIT_FILES[split]
    images, image_sha = read_idx(files[image_name])
    labels, label_sha = read_idx(files[label_name])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise UserError(f"{files[image_name]} and {files[label_name]} do not pair up: shapes "
                        f"{images.shape} and {labels.shape}")
    read = [{"path": str(files[image_name]), "sha256": image_sha},
            {"path": str(files[label_name]), "sha256": label_sha}]
    return images, labels, read

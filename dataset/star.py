"""RELION-style STAR particle tables through ``starfile``, written atomically and reproducibly."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import starfile

from dsmnet.core.fsutil import atomic_path
from dsmnet.dataset.mrc import DataError


def write_star(path: str | Path, blocks: dict[str, pd.DataFrame | dict]) -> None:
    """Write STAR data blocks atomically, without starfile's timestamp line (same data, same bytes)."""
    with atomic_path(path, suffix=".star") as tmp:
        starfile.write(blocks, tmp, float_format="%.6f")
        text = tmp.read_text()
        lines = [line for line in text.splitlines(keepends=True) if not line.startswith("# Created by the starfile")]
        tmp.write_text("".join(lines).lstrip("\n"))


def read_star(path: str | Path, block: str | None = None) -> pd.DataFrame:
    """Read one data block of a STAR file (the named one, ``particles``, or the only one).

    Raises:
        DataError: missing or unreadable file, or no such block.
    """
    return particles_block(read_star_blocks(path), path, block)


def particles_block(blocks: dict, path: str | Path, block: str | None = None) -> pd.DataFrame:
    """One of a STAR file's blocks (as read by :func:`read_star_blocks`) as a table: the named
    one, ``particles``, or the first.

    Raises:
        DataError: no blocks, or no such block, naming ``path``.
    """
    if not blocks:
        raise DataError(f"{path}: no data blocks")
    if block is None:
        block = "particles" if "particles" in blocks else next(iter(blocks))
    if block not in blocks:
        raise DataError(f"{path}: no data block {block!r} (blocks: {', '.join(blocks)})")
    table = blocks[block]
    return table if isinstance(table, pd.DataFrame) else pd.DataFrame([table])


def read_star_blocks(path: str | Path) -> dict[str, pd.DataFrame | dict]:
    """Every data block of a STAR file (``optics``, ``general``, ``particles``…) in file order: a
    loop as a table, a key-value block as a dict, so that a file can be written back whole.

    Raises:
        DataError: missing or unreadable file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such STAR file")
    try:
        data = starfile.read(path, always_dict=True)
    except Exception as exc:  # starfile raises a variety of parser errors
        raise DataError(f"{path}: not a readable STAR file ({type(exc).__name__}: {exc})") from None
    return dict(data)

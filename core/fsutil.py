"""Outputs are written under a temporary name and renamed when complete, never left half-written.

A temporary name carries its writer's process id (``.NAME.PID.RANDOM.tmp``), so a run that was
killed (SIGKILL, power loss) is cleaned up by the next writer of the same output: temporaries whose
process is gone are removed, and an output caught between its two renames is put back."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from dsmnet.registry.errors import UserError

_UMASK = os.umask(0o022)  # read once (os.umask can only be read by setting it), then put back
os.umask(_UMASK)


class OutputError(UserError, OSError):
    """An output cannot be written (no permission, no such folder, disk full); names the path."""


class OutputExistsError(OutputError, FileExistsError):
    """The output is already there and overwriting was not asked for."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale(path: str | Path) -> list[Path]:
    """Remove the temporaries a killed writer of ``path`` left beside it (their process is gone),
    and put back ``path`` if a kill came between :func:`atomic_dir`'s two renames. Returns what was
    removed. Temporaries of a live process, and names not of this form, are left alone."""
    path = Path(path)
    old = path.with_name(f".{path.name}.old")
    if old.is_dir():  # killed between (or after) the renames: the old output is back, or gone
        if path.exists():
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(old, path)
    removed = []
    prefix = f".{path.name}."
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(path.parent):
            if not (entry.name.startswith(prefix) and entry.name.endswith(".tmp")):
                continue
            pid = entry.name[len(prefix) :].split(".", 1)[0]
            if not pid.isdigit() or _alive(int(pid)):
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
            removed.append(Path(entry.path))
    return removed


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp", *, clean: bool = False) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder to write to; on success it is renamed to ``path``,
    on failure removed. ``suffix`` lets writers that infer a format from the name (``.png``) work.
    ``clean`` first removes what killed writers of ``path`` left (:func:`remove_stale`; it lists
    the folder, so writers of many small files inside a fresh folder leave it off).

    Examples:
        >>> with atomic_path("out/fig.png", suffix=".png") as tmp:
        ...     fig.savefig(tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if clean:
        remove_stale(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it private; the result is an ordinary file
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, then rename."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def atomic_write_text(path: str | Path, text: str) -> None:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    atomic_write_bytes(path, text.encode())


def to_json(obj) -> str:
    """``json.dumps(obj, indent=1)`` with each list of numbers (or strings, or nulls) on one line,
    so a confusion matrix reads as one and a per-particle record is a line, not thousands."""

    def flat(v) -> bool:
        return isinstance(v, list) and all(not isinstance(x, (list, dict)) for x in v)

    def fmt(v, depth: int) -> str:
        pad, inner = " " * depth, " " * (depth + 1)
        if flat(v):
            return json.dumps(v)
        if isinstance(v, list):
            return "[\n" + ",\n".join(inner + fmt(x, depth + 1) for x in v) + "\n" + pad + "]" if v else "[]"
        if isinstance(v, dict):
            items = (inner + json.dumps(str(k)) + ": " + fmt(x, depth + 1) for k, x in v.items())
            return "{\n" + ",\n".join(items) + "\n" + pad + "}" if v else "{}"
        return json.dumps(v)

    return fmt(obj, 0) + "\n"


@contextlib.contextmanager
def atomic_dir(path: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces ``path``, on failure it is removed.
    What killed writers of ``path`` left is removed first (:func:`remove_stale`).

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False.
    """
    path = Path(path)
    try:
        remove_stale(path)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} already exists (choose another --out, or pass --overwrite)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent))
        os.chmod(tmp, 0o777 & ~_UMASK)  # mkdtemp makes it private; the result is an ordinary folder
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if path.exists():
        old = path.with_name(f".{path.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)


class BusyError(OutputError):
    """Another process holds the folder (trains the same run); names the folder and the process."""


@contextlib.contextmanager
def claimed(folder: str | Path) -> Iterator[None]:
    """Hold ``folder`` for one process while the block runs: an exclusive lock on ``folder/.lock``
    holding the process id. A second process claiming it is refused (:class:`BusyError`, naming the
    holder) instead of writing the same checkpoints and records at once; the system drops the lock
    with its process, so a killed run leaves none behind. Where ``fcntl`` is missing (Windows) the
    block runs unguarded."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on Linux or macOS
        yield
        return
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            raise BusyError(
                f"{folder}: being trained by another process (pid {holder}); wait for it to end or stop it"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield

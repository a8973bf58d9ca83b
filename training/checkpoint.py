"""Checkpoints: plain data only (they load with ``torch.load(weights_only=True)``), written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from dsmnet.core.fsutil import atomic_path
from dsmnet.dataset.mrc import DataError

FORMAT = 1


def on_host(value: Any) -> Any:
    """``value`` with every tensor in it on the CPU (dicts, lists and tuples walked through)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu() if value.device.type != "cpu" else value
    if isinstance(value, dict):
        return {k: on_host(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(on_host(v) for v in value)
    return value


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` through a temporary file and a rename: a kill never leaves half a
    file, and the next save removes a temporary a killed run left. Every tensor is written from the
    CPU, so a GPU-written checkpoint loads with a plain ``torch.load`` on a machine without one."""
    with atomic_path(path, clean=True) as tmp:
        torch.save(on_host({"format": FORMAT, **state}), tmp)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint safely (``weights_only=True``). Raises DataError naming the file."""
    if not path.is_file():
        raise DataError(f"{path}: no such checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and torch errors alike
        raise DataError(f"{path}: not a readable dsmnet checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise DataError(
            f"{path}: not a dsmnet checkpoint (format {state.get('format') if isinstance(state, dict) else '?'})"
        )
    return state


def find_checkpoint(run: Path, which: str = "best") -> Path:
    """A run folder's ``best.pt``/``last.pt``, or a checkpoint file given directly."""
    if run.is_file():
        return run
    path = run / f"{which}.pt"
    if not path.is_file():
        raise DataError(
            f"{run}: no {which}.pt in this run folder (train first: dsmnet train SPEC --data DIR --out {run})"
        )
    return path


def load_weights(module: torch.nn.Module, weights: dict[str, Any], path: Path) -> None:
    """Load a checkpoint's ``weights`` into the network its spec builds now. A mismatch — a
    checkpoint written before a component's default changed (a pose head's ``hypotheses``, say) —
    is a DataError naming the file and the first parameter that differs, not a traceback."""
    try:
        module.load_state_dict(weights)
    except RuntimeError:
        ours = module.state_dict()
        shaped = [k for k in ours if k in weights and ours[k].shape != weights[k].shape]
        missing, unexpected = [k for k in ours if k not in weights], [k for k in weights if k not in ours]
        if not (shaped or missing or unexpected):
            raise  # not a mismatch of names or shapes: torch's own error
        first = (shaped or missing or unexpected)[0]
        raise DataError(
            f"{path}: its weights do not fit the network its spec builds now ({len(shaped)} of another "
            f"shape, {len(missing)} missing, {len(unexpected)} unexpected; first {first!r}): a component's "
            "default has changed since it was written — state the old value in its spec"
        ) from None

"""How a trained classifier reads its test boxes turned away from where they lie: object accuracy
on boxes rotated by fixed angles about random axes, the data's wedge re-imposed afterwards (the
view the ``rotate`` augmentation trains on) or the wedge turned with the box (a ``spin`` view).

It separates what a rotation costs: the resampling alone (``spin`` views: nothing is removed) or
the frequencies of the turned wedge as well (``rotate`` views).

Run: ``python -m dsmnet.reproduce.views RUN --data TEST_DIR [--n 1200] [--angles 0,5,30,90]``
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from dsmnet.core.fsutil import atomic_write_text
from dsmnet.registry.errors import run_command

ANGLES = (0, 5, 15, 30, 60, 90, 180)


def axis_angle(axis, theta: float):
    """The rotation matrix (float32 tensor) by ``theta`` radians about ``axis``."""
    import torch
    from scipy.spatial.transform import Rotation

    axis = axis.double() / axis.norm()
    return torch.from_numpy(Rotation.from_rotvec((axis * theta).numpy()).as_matrix()).float()


def turned_accuracy(run: Path, data_dir: Path, n: int, angles: tuple[float, ...], seed: int = 5) -> dict:
    """Accuracy on the first ``n`` particles of ``data_dir`` for each angle (degrees), re-masked
    (``rotate``) and not (``spin``); one random axis per particle and angle."""
    import torch

    from dsmnet.training.augment import measured_frequencies, rotated_batch
    from dsmnet.training.data import load_dataset
    from dsmnet.training.step import load_trained

    model, _, state = load_trained(run)
    data = load_dataset(data_dir, classes=state["classes"], box=tuple(state["spec"]["input"]["shape"]))
    n = min(n, len(data))
    labels = torch.as_tensor(data.labels[:n])
    measured = measured_frequencies(data.root, data.box, data.voxel_size)
    out: dict[str, dict[str, float]] = {"rotate": {}, "spin": {}}
    with torch.no_grad():
        for view, mask in (("rotate", measured), ("spin", None)):
            gen = torch.Generator().manual_seed(seed)  # the same axes for both views
            for deg in angles:
                correct = 0
                for start in range(0, n, 60):
                    idx = torch.arange(start, min(start + 60, n))
                    x, _, _ = data.batch(idx, [])
                    turns = torch.stack([axis_angle(torch.randn(3, generator=gen), math.radians(deg)) for _ in idx])
                    logits = model(rotated_batch({"x": x}, turns, mask)["x"])["cls"]
                    correct += int((logits.argmax(1) == labels[idx]).sum())
                out[view][f"{deg:g}"] = correct / n
    return {"run": str(run), "data": str(data_dir), "particles": n, "accuracy": out}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dsmnet.reproduce.views",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run", type=Path, help="a trained run folder (its best.pt)")
    parser.add_argument("--data", type=Path, required=True, help="test dataset folder")
    parser.add_argument("--n", type=int, default=1200, help="particles (the first n; default 1200)")
    parser.add_argument("--angles", default=",".join(map(str, ANGLES)), help="degrees, comma-separated")
    parser.add_argument("--out", type=Path, help="write the JSON here too")
    args = parser.parse_args(argv)
    try:
        angles = tuple(float(a) for a in args.angles.split(","))
    except ValueError:
        parser.error(f"--angles {args.angles!r}: expected numbers of degrees, comma-separated (e.g. 0,30,90)")
    if args.n < 1:
        parser.error(f"--n must be at least 1, got {args.n}")

    def body() -> None:
        result = turned_accuracy(args.run, args.data, args.n, angles)
        text = json.dumps(result, indent=1) + "\n"
        if args.out:
            atomic_write_text(args.out, text)
        print(text, end="")

    return run_command(body, parser.prog)


if __name__ == "__main__":
    raise SystemExit(main())

"""The pose reference: each box's orientation found by template matching with its own class's map.

What a pose head (:mod:`dsmnet.heads.pose`) is measured against. For every box of a simulated
dataset, its **true class's** library map is searched over ``rotations`` orientations with the
template-matching score of :mod:`dsmnet.reproduce.oracle` (imaging, wedge and noise known); the
best orientation is the box's pose as template matching reads it. Each found pose is scored as
a pose head's prediction is (:mod:`dsmnet.training.evaluate`): its angle to the recorded pose
(degrees, blind to symmetry) and the pose loss (:class:`~dsmnet.losses.pose.TurnedDensity`, 0 for
any pose the complex's symmetry cannot tell from the recorded one). The class is given, so this
bounds what a search over orientations reads from a box; its rotation set is a grid of that
fineness (2000 rotations: neighbours ~15° apart), which floors its error.

Run: ``dsmnet template-match --data DATASET --poses [--rotations 2000]``
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from dsmnet.core.rotations import angle_between
from dsmnet.dataset import layout
from dsmnet.dataset.mrc import DataError
from dsmnet.dataset.subtomograms import load_dataset
from dsmnet.losses.pose import pose_error
from dsmnet.reproduce.oracle import _best_scores, _imaging, _simulation, _true_maps, _whitened_boxes, search_turns


@torch.no_grad()
def template_poses(data_dir: Path, rotations: int = 2000, seed: int = 0, log=lambda _m: None) -> dict[str, Any]:
    """Every box's pose by template matching with its true class's map, scored against its
    recorded pose (see the module).

    Raises:
        DataError: not a dsmnet simulation, or its particles lack poses or densities.
    """
    root, classes, table, config = _simulation(data_dir)
    box, voxel = int(config["box"]), float(config["voxel_size"])
    data = load_dataset(root)
    if not {"pose", "density"} <= set(data.targets):
        raise DataError(f"{root}: the pose reference needs each particle's pose and density")
    templates = _true_maps(root, classes, box, voxel)
    matched, energy_filter = _imaging(config)
    whitened, turns = _whitened_boxes(root, table, box, matched), search_turns(rotations, seed)
    truth = table[layout.CLASS_NUMBER].to_numpy().astype(int) - 1
    best = np.zeros(len(table), dtype=int)
    for c, name in enumerate(classes):
        mine = np.flatnonzero(truth == c)
        if len(mine):
            best[mine] = _best_scores(whitened[mine], templates[c : c + 1], [name], turns, energy_filter, log)[1][:, 0]
    found = torch.from_numpy(turns[best]).float()
    angle, loss = [], []
    for lo in range(0, len(table), 250):
        idx = torch.arange(lo, min(lo + 250, len(table)))
        _, targets, _ = data.batch(idx, {"pose", "density"})
        angle += angle_between(found[idx], targets["pose"]).tolist()
        loss += pose_error(found[idx], targets["pose"], targets["density"]).tolist()
    per_class = {
        name: {
            "angle": float(np.median(np.array(angle)[truth == c])),
            "pose_loss": float(np.median(np.array(loss)[truth == c])),
        }
        for c, name in enumerate(classes)
        if (truth == c).any()
    }
    return {
        "run": f"template matching's poses with the true class's map ({rotations} rotations)",
        "data": str(root),
        "particles": int(len(truth)),
        "rotations": rotations,
        "metrics": {"median_angle": float(np.median(angle)), "median_pose_loss": float(np.median(loss))},
        "per_class": per_class,
        "classes": classes,
        "per_particle": {"label": truth.tolist(), "angle_pose": angle, "pose_loss_pose": loss},
    }

"""A pose head's test record beside the pose reference, class by class.

    python results/converged/pose/compare.py results/converged/metrics/A/dsmnet-cls+seg+rec-pose/seed0.json \
        results/converged/pose/template_poses_A_test.json

Prints, per class, the median angle and pose loss of the network's poses and of template
matching's (the true class's map over 2000 rotations), and the share of particles whose pose
loss is below 0.1 (a pose within ~10°, or an equivalent one) for each. Both records must score the
same test particles in the same order (the study's evaluate and ``template-match --poses`` do).
"""

from __future__ import annotations

import json
import sys

import numpy as np


def scores(record: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The labels, angles and pose losses of a record's particles (NaN where one had no pose)."""
    per = record["per_particle"]
    as_array = lambda key: np.array([np.nan if v is None else v for v in per[key]], dtype=float)  # noqa: E731
    return np.asarray(per["label"]), as_array("angle_pose"), as_array("pose_loss_pose")


def main(network_path: str, reference_path: str) -> None:
    network, reference = (json.loads(open(p).read()) for p in (network_path, reference_path))
    labels, angle, loss = scores(network)
    ref_labels, ref_angle, ref_loss = scores(reference)
    if not np.array_equal(labels, ref_labels):
        raise SystemExit(f"{network_path} and {reference_path} score different particles")
    classes = reference["classes"]
    print(f"{'class':32s} {'network':>18s} {'template matching':>22s}")
    print(f"{'':32s} {'angle':>7s} {'loss':>5s} {'<0.1':>5s} {'angle':>9s} {'loss':>5s} {'<0.1':>5s}")
    for c, name in [*enumerate(classes), (None, "all")]:
        at = labels == c if c is not None else np.ones(len(labels), bool)
        cells = [np.nanmedian(angle[at]), np.nanmedian(loss[at]), np.nanmean(loss[at] < 0.1)]
        cells += [np.nanmedian(ref_angle[at]), np.nanmedian(ref_loss[at]), np.nanmean(ref_loss[at] < 0.1)]
        network_cells = f"{cells[0]:6.1f}° {cells[1]:5.3f} {cells[2]:5.2f}"
        print(f"{name:32s} {network_cells} {cells[3]:8.1f}° {cells[4]:5.3f} {cells[5]:5.2f}")


if __name__ == "__main__":
    main(*sys.argv[1:3])

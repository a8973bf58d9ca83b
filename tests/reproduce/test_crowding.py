"""The report's accuracy against crowding: each row's test accuracy in thirds of the target's share
of its box, for the lighter and the heavier classes, from the per-particle records."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dsmnet.dataset import layout
from dsmnet.dataset.star import write_star
from dsmnet.reproduce.report import crowding_lines

# two light and two heavy complexes of the structure library, in the test set's class order
NAMES = ["ribosome_6zu5", "mjap_9x2o", "cct_4v8r", "gltph_2nwl"]


def _test_set(tmp_path, labels, share):
    table = pd.DataFrame({layout.CLASS_NUMBER: labels + 1, layout.TARGET_SHARE: share})
    write_star(tmp_path / layout.PARTICLES, {"particles": table})
    return tmp_path


def _row(labels, predicted, network=False):
    """A row's first record: a reference row names its classes, a network's evaluation has them
    as the keys of its per-class accuracy."""
    names = {"per_class_accuracy_cls": dict.fromkeys(NAMES, 0.5)} if network else {"classes": NAMES}
    return [{**names, "per_particle": {"label": labels.tolist(), "predicted_cls": predicted.tolist()}}]


def test_each_third_of_each_half_holds_its_rows_accuracy(tmp_path):
    labels = np.repeat(np.arange(4), 30)
    share = np.tile(np.linspace(0.01, 0.9, 30), 4)
    test = _test_set(tmp_path, labels, share)
    isolated = np.where(share > 0.6, labels, (labels + 1) % 4)  # right only in the least crowded third
    rows = {"perfect": _row(labels, labels, network=True), "isolated": _row(labels, isolated, network=True)}
    lines = crowding_lines("table3", rows, test)  # no reference rows: the networks name the classes
    rows = [line for line in lines if line.startswith("| the 2 ")]
    assert len(rows) == 6  # three thirds of the 2 lightest, then of the 2 heaviest
    cells = [[c.strip() for c in row.strip("|").split("|")] for row in rows]
    assert [c[0] for c in cells] == ["the 2 lightest by library mass"] * 3 + ["the 2 heaviest"] * 3
    assert all(c[2] == "20" for c in cells)  # 60 particles a half, 20 a third
    assert [c[3] for c in cells] == ["1.00"] * 6
    assert [c[4] for c in cells] == ["0.00", "0.00", "1.00"] * 2


def test_nothing_without_shares_or_with_other_particles(tmp_path):
    labels = np.repeat(np.arange(4), 6)
    rows = {"a": _row(labels, labels), "b": _row(labels, labels)}
    assert crowding_lines("table1", rows, tmp_path / "none") == []  # no test set in this folder
    test = _test_set(tmp_path, labels, np.linspace(0, 1, 24))
    shuffled = {"a": rows["a"], "b": _row(labels[::-1], labels[::-1])}  # another order: not paired
    assert crowding_lines("table1", shuffled, test) == []


def test_the_lighter_and_heavier_halves_of_a_run_and_of_a_reference_row():
    from dsmnet.reproduce.report import mass_halves

    network = {"per_class_accuracy_cls": {"ribosome_6zu5": 1.0, "mjap_9x2o": 0.2, "cct_4v8r": 0.8, "gltph_2nwl": 0.4}}
    assert mass_halves(network) == [("2 lightest", pytest.approx(0.3)), ("2 heaviest", pytest.approx(0.9))]
    reference = {"classes": NAMES, "confusion_cls": [[4, 0, 0, 0], [1, 3, 0, 0], [0, 0, 2, 2], [0, 0, 0, 4]]}
    assert mass_halves(reference) == [("2 lightest", 0.875), ("2 heaviest", 0.75)]
    assert mass_halves({"per_class_accuracy_cls": {"nowhere_0000": 1.0, **dict.fromkeys(NAMES, 0.5)}}) == []


def test_target_iou_on_the_lighter_and_heavier_halves():
    from dsmnet.reproduce.report import target_iou_lines

    labels = np.repeat(np.arange(4), 2)  # NAMES: ribosome (heavy), mjap (light), cct (heavy), gltph (light)
    # [tn, fp, fn, tp]: IoU 1 for the heavy classes' particles, 1/2 and 1/4 for the light ones'
    iou = {0: [0, 0, 0, 8], 1: [0, 4, 0, 4], 2: [0, 0, 0, 8], 3: [0, 3, 3, 2]}
    seg = {"per_particle": {"label": labels.tolist(), "confusion_seg": [iou[k] for k in labels]}}
    rows = {"classifier": _row(labels, labels, network=True), "segmenter": [seg]}
    lines = target_iou_lines("table1", rows)
    assert "| complexes | segmenter |" in lines
    # and the voxels it gives the targets over their true voxels: (8 + 5) / (4 + 5) on the light ones
    assert "| the 2 lightest by library mass | 0.38 (1.44×) |" in lines and "| the 2 heaviest | 1.00 (1.00×) |" in lines
    assert target_iou_lines("table1", {"segmenter": [seg]}) == []  # no class names in the table

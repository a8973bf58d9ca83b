"""The pose head, its loss, poses read from a dataset and carried through augmentation, test-time
turns, training, evaluation and prediction."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import yaml
from scipy.spatial.transform import Rotation

from dsmnet.core.build import build_loss, build_model
from dsmnet.core.rotations import chosen_pose, pose_hypotheses, rotate_volumes, spread_rotations
from dsmnet.core.shapes import ShapeSpec
from dsmnet.dataset.mrc import DataError
from dsmnet.dataset.star import read_star, write_star
from dsmnet.dataset.subtomograms import load_dataset
from dsmnet.heads.pose import PoseHead, angle_between, nearest_rotation, rotation_from_6d
from dsmnet.losses.pose import TurnedDensity, pose_error
from dsmnet.training.augment import ROT180, augment, measured_frequencies, turn, turn_matrix
from dsmnet.training.tta import Turns
from tests.conftest import TINY


def _rotations(n: int, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(Rotation.random(n, random_state=seed).as_matrix()).float()


def _about_z(degrees: float) -> torch.Tensor:
    return torch.from_numpy(Rotation.from_euler("z", degrees, degrees=True).as_matrix()).float()


def _four_fold(n: int = 24) -> torch.Tensor:
    """A density with a four-fold axis along z and no other symmetry: four blobs about the axis,
    one of them above the others' plane in none (a C4 pinwheel), and a stalk below the centre."""
    z, y, x = torch.meshgrid(*(torch.arange(n, dtype=torch.float32) - n // 2,) * 3, indexing="ij")
    d = torch.zeros(n, n, n)
    for k in range(4):
        a = k * math.pi / 2
        cx, cy = 6 * math.cos(a) - 2 * math.sin(a), 6 * math.sin(a) + 2 * math.cos(a)  # off-radial: no mirror
        d += torch.exp(-((x - cx) ** 2 + (y - cy) ** 2 + (z - 2) ** 2) / 4)
    d += torch.exp(-(x**2 + y**2 + (z + 5) ** 2) / 6)
    return d


@pytest.mark.parametrize("k", [1, 24])
def test_the_head_answers_proper_rotations_and_their_means_are_made_rotations_again(k):
    head = PoseHead(ShapeSpec(16, 8, (3, 3, 3)), hidden=(8,), hypotheses=k).train()
    out = head(torch.randn(5, 16, 3, 3, 3))
    assert out.shape == ((5, 3, 3) if k == 1 else (5, k, 10))
    turns, scores = pose_hypotheses(out)
    assert turns.shape == (5, k, 3, 3) and (scores is None) == (k == 1)
    eye = torch.eye(3).expand(5, k, 3, 3)
    assert torch.allclose(turns @ turns.transpose(-1, -2), eye, atol=1e-5)
    assert torch.allclose(torch.linalg.det(turns), torch.ones(5, k), atol=1e-5)
    r = chosen_pose(out)
    assert r.shape == (5, 3, 3) and (k == 1 or torch.equal(r[2], turns[2, int(scores[2].argmax())]))
    assert torch.allclose(rotation_from_6d(torch.tensor([[1.0, 0, 0, 0, 1, 0]])), torch.eye(3)[None])
    q = _rotations(4)
    assert torch.allclose(nearest_rotation(q), q, atol=1e-5)
    mean = nearest_rotation((q[:1] + q[:1] @ _about_z(10)) / 2)  # the mean of two poses 10° apart
    assert float(angle_between(mean, q[:1])) == pytest.approx(5.0, abs=0.05)
    assert float(angle_between(q[:1], q[:1] @ _about_z(30))) == pytest.approx(30.0, abs=1e-3)


def test_hypotheses_start_spread_over_all_orientations():
    """At K = 24 the cube's group: 90° or more apart, and no orientation more than 63° from one;
    at other K, farthest points (the identity first)."""
    starts = spread_rotations(24)
    apart = angle_between(starts[:, None].expand(24, 24, 3, 3), starts[None].expand(24, 24, 3, 3))
    assert torch.allclose(starts[0], torch.eye(3)) and float((apart + 180 * torch.eye(24)).min()) > 89.9
    probe = _rotations(2000, seed=5)
    for k, reach in ((24, 63.0), (8, 120.0), (60, 58.0)):
        s = spread_rotations(k)
        nearest = angle_between(probe[:, None].expand(-1, k, 3, 3), s[None].expand(2000, -1, 3, 3)).min(1).values
        assert float(nearest.max()) < reach, k


def test_the_loss_is_zero_at_the_pose_and_at_its_symmetric_equivalents_and_grows_away_from_them():
    reference = _four_fold()[None, None]
    pose = _rotations(1, seed=3)
    density = rotate_volumes(reference, pose.transpose(1, 2))  # the reference turned by its pose
    loss = TurnedDensity()

    def at(r: torch.Tensor) -> float:
        return float(loss(r, pose, density))

    assert at(pose) < 1e-10
    assert at(pose @ _about_z(90)) < 0.01  # a symmetry of the complex: the same particle
    assert at(pose @ _about_z(180)) < 0.01
    away = [at(pose @ _about_z(a)) for a in (5, 15, 45)]
    assert 0.01 < away[0] < away[1] < away[2]  # 45°: half-way between two equivalent poses
    tilted = at(pose @ torch.from_numpy(Rotation.from_euler("x", 90, degrees=True).as_matrix()).float())
    assert tilted > 0.5


def test_the_losss_gradient_leads_a_prediction_to_the_pose():
    """From 25° away, gradient descent on the 6-d representation brings the prediction to within a
    few degrees of the pose (or of an equivalent one)."""
    reference = _four_fold()[None, None]
    pose = _rotations(1, seed=4)
    density = rotate_volumes(reference, pose.transpose(1, 2))
    start = pose @ torch.from_numpy(Rotation.from_rotvec([0.3, -0.25, 0.2]).as_matrix()).float()
    assert float(angle_between(start, pose)) > 20
    six = torch.cat([start[0, :, 0], start[0, :, 1]])[None].clone().requires_grad_(True)
    optimiser = torch.optim.Adam([six], lr=0.02)
    for _ in range(150):
        optimiser.zero_grad()
        TurnedDensity()(rotation_from_6d(six), pose, density).sum().backward()
        optimiser.step()
    found = rotation_from_6d(six.detach())
    closest = min(float(angle_between(found, pose @ _about_z(90 * k))) for k in range(4))
    assert closest < 4


def test_hypotheses_that_start_apart_reach_poses_one_start_cannot(small_data):
    """The trap the hypotheses are for: 16 particles' poses fitted free (the head on one-hot
    features, no hidden layer: its own parameters for each). One hypothesis from the identity
    reaches few of them; 24 from the cube's group, each descending on its own share of the loss,
    reach every one, and the scores learn to pick the one that did (most of them in 40 steps); the
    best one's term alone (relax 0) leaves half of them where a wrong hypothesis scored lower at first."""
    _, targets, _ = load_dataset(small_data).batch(torch.arange(16), {"pose", "density"})
    pose, density, onehot = targets["pose"], targets["density"], torch.eye(16)[:, :, None, None, None]

    def fit(k: int, relax: float = 0.0) -> tuple[float, float]:
        torch.manual_seed(0)
        head, loss = PoseHead(ShapeSpec(16, 1, (1, 1, 1)), hidden=(), hypotheses=k), TurnedDensity(relax=relax)
        optimiser = torch.optim.Adam(head.parameters(), lr=0.01)
        for _ in range(40):
            optimiser.zero_grad()
            loss(head(onehot), pose, density).mean().backward()
            optimiser.step()
        with torch.no_grad():
            out = head(onehot)
            best = TurnedDensity(stride=1).each(pose_hypotheses(out)[0], pose, density).min(1).values
            return float((best < 0.1).float().mean()), float((pose_error(out, pose, density) < 0.1).float().mean())

    one, greedy, many = fit(1), fit(24, relax=0.0), fit(24, relax=0.1)
    assert one[0] <= 0.5 and greedy[0] <= 0.75 and many[0] == 1.0 and many[1] >= 0.6, (one, greedy, many)


def test_poses_are_read_from_the_tables_angles_and_missing_ones_are_left_out(small_data, tmp_path):
    data = load_dataset(small_data)
    table = read_star(small_data / "particles.star")
    angles = table[["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]].to_numpy(float)
    expected = Rotation.from_euler("ZYZ", angles, degrees=True).as_matrix()
    assert np.allclose(data.targets["pose"].numpy(), expected, atol=1e-6)
    assert bool(data.present["pose"].all())
    # a particle's density turned back by its pose is its class's reference: two of a class agree
    labels = data.labels
    first, second = np.flatnonzero(labels == labels[0])[:2]
    back = [rotate_volumes(data.targets["density"][[i]].float(), data.targets["pose"][[i]]) for i in (first, second)]
    assert float(torch.nn.functional.cosine_similarity(back[0].flatten(), back[1].flatten(), 0)) > 0.8

    copy = tmp_path / "copy"
    copy.mkdir()
    for folder in ("subtomograms", "masks", "densities"):
        (copy / folder).symlink_to(small_data / folder)
    (copy / "classes.json").write_text((small_data / "classes.json").read_text())
    table.loc[1, "rlnAngleTilt"] = float("nan")
    write_star(copy / "particles.star", {"particles": table})
    partial = load_dataset(copy)
    assert not bool(partial.present["pose"][1]) and int(partial.present["pose"].sum()) == len(table) - 1
    table["rlnAnglePsi"] = table["rlnAnglePsi"].astype(object)
    table.loc[2, "rlnAnglePsi"] = "ninety"
    write_star(copy / "particles.star", {"particles": table})
    with pytest.raises(DataError, match=r"particles.star: particle 3 has rlnAnglePsi 'ninety', not a number"):
        load_dataset(copy)
    write_star(copy / "particles.star", {"particles": table.drop(columns=["rlnAngleRot"])})
    assert "pose" not in load_dataset(copy).targets


@pytest.mark.parametrize("kind", ["rotate", "mixed", "spin", "rot180", "none"])
def test_augmentations_turn_the_pose_with_the_particle(small_data, kind):
    """The augmented density turned back by the augmented pose is the reference the original gives:
    the pose moved exactly as the particle did (a pose left as it was fails this)."""
    data = load_dataset(small_data)
    x, targets, _ = data.batch(torch.arange(12), {"density", "pose"})
    measured = measured_frequencies(small_data, data.box, data.voxel_size)
    moved = augment({"x": x, **targets}, kind, torch.Generator().manual_seed(1), measured)
    before = rotate_volumes(targets["density"].float(), targets["pose"]).flatten(1)
    after = rotate_volumes(moved["density"].float(), moved["pose"]).flatten(1)
    assert float(torch.nn.functional.cosine_similarity(before, after).min()) > 0.97
    if kind != "none":
        unmoved = rotate_volumes(moved["density"].float(), targets["pose"]).flatten(1)
        assert float(torch.nn.functional.cosine_similarity(before, unmoved).min()) < 0.9


def test_test_time_turns_turn_each_views_pose_back():
    q = _rotations(2)

    class Equivariant(torch.nn.Module):  # answers the pose of the view it is shown
        targets = {"pose": "pose"}

        def forward(self, x):
            dims = next(d for d in ROT180 if torch.equal(turn(self.seen, d), x))
            return {"pose": turn_matrix(dims) @ q}

    model = Equivariant()
    model.seen = torch.randn(2, 1, 6, 6, 6)
    assert torch.allclose(Turns(model)(model.seen)["pose"], q, atol=1e-5)


def _pose_spec(tmp_path) -> str:
    spec = json.loads(json.dumps(TINY))
    spec["heads"]["pose"] = {"type": "pose", "hidden": [16]}
    spec["losses"]["pose"] = {"type": "turned_density", "weight": 1}
    path = tmp_path / "pose.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def test_a_sample_without_a_density_is_left_out_of_the_pose_loss(tmp_path):
    loss = build_loss(_pose_spec(tmp_path))
    model = build_model(_pose_spec(tmp_path)).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 1, 24, 24, 24))
    d = torch.rand(2, 1, 24, 24, 24)
    targets = {"class": torch.tensor([0, 1]), "pose": _rotations(2), "density": d, "mask": torch.zeros(2, 24, 24, 24)}
    both = loss(out, targets, {k: torch.tensor([True, True]) for k in targets}).tasks["pose"]
    present = {k: torch.tensor([True, True]) for k in targets} | {"density": torch.tensor([True, False])}
    one = loss(out, targets, present).tasks["pose"]
    alone = TurnedDensity()(out["pose"][:1], targets["pose"][:1], d[:1]).sum() / 2
    assert float(one) == pytest.approx(float(alone.detach()), rel=1e-5) and float(one) < float(both)
    assert float(loss(out, {k: v for k, v in targets.items() if k != "density"}).tasks["pose"]) == 0.0


def test_a_pose_head_trains_evaluates_and_predicts_angles(small_data, tmp_path):
    from dsmnet.infer.predict import predict
    from dsmnet.training.evaluate import evaluate
    from dsmnet.training.loop import train
    from dsmnet.training.settings import TrainConfig

    run = tmp_path / "run"
    train(_pose_spec(tmp_path), small_data, run, TrainConfig(progress=False, epochs=2, augment="rotate"), log=print)
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(0 <= h["angle_pose"] <= 180 and h["train_loss_pose"] > 0 for h in history if "angle_pose" in h)
    results = evaluate(run, small_data, split="val", tta=True)
    assert set(results["median_pose_loss_pose"]) == set(load_dataset(small_data).classes)
    assert len(results["per_particle"]["angle_pose"]) == results["particles"]
    predict(run, small_data, tmp_path / "pred")
    table = read_star(tmp_path / "pred" / "predictions.star")
    given = read_star(small_data / "particles.star")
    assert np.allclose(table["dsmInputAngleTilt"].to_numpy(float), given["rlnAngleTilt"].to_numpy(float))
    angles = ["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]
    predicted = table[angles].to_numpy(float)
    assert len(predicted) == len(given) and np.isfinite(predicted).all()
    assert not np.allclose(predicted, given[angles].to_numpy(float), atol=1.0)  # the model's, not the input's


def test_a_pose_head_cannot_be_trained_by_another_loss(tmp_path):
    from dsmnet.core.errors import SpecError

    spec = yaml.safe_load(open(_pose_spec(tmp_path)))
    spec["losses"]["pose"] = {"type": "mse", "weight": 1}
    with pytest.raises(SpecError, match="losses.pose.type.*turned_density"):
        build_model(spec)


def test_a_pose_head_is_not_trained_on_mirrored_particles(small_data, tmp_path, capsys):
    from dsmnet.cli import main

    code = main(["train", _pose_spec(tmp_path), "--data", str(small_data), "--out", str(tmp_path / "r"),
                 "--augment", "flip", "--epochs", "1", "--no-progress"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "flip mirrors particles" in err[0] and "rotate" in err[0]


def test_a_checkpoint_of_a_one_pose_head_written_before_the_default_changed_is_refused_in_one_line(tmp_path):
    """A pose head's checkpoint from before 24 hypotheses became the default (its spec silent on
    ``hypotheses``) builds 24 now: loading it is a DataError naming the file, not a traceback."""
    from dsmnet.training.checkpoint import save_checkpoint
    from dsmnet.training.step import TrainStep, load_trained

    spec = yaml.safe_load(open(_pose_spec(tmp_path)))
    old = json.loads(json.dumps(spec))
    old["heads"]["pose"]["hypotheses"] = 1
    step = TrainStep(build_model(old), build_loss(old))
    save_checkpoint(tmp_path / "best.pt", {"spec": spec, "step": step.state_dict()})
    with pytest.raises(DataError, match=r"best.pt: its weights do not fit .* first 'model.heads.pose"):
        load_trained(tmp_path)
    save_checkpoint(tmp_path / "best.pt", {"spec": old, "step": step.state_dict()})  # stated: it loads
    assert load_trained(tmp_path)[0].heads["pose"].hypotheses == 1

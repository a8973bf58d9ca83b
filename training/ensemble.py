"""Several trained runs as one model: their outputs averaged, for ``evaluate`` and ``predict``.

Runs trained from different seeds (or recipes) of the same network read different particles
right — the converged study's DSM-Net seeds 0 and 1 give the same class to 81 % of the test
particles, and at least one of them is right on 67 % against 63 % for either alone — and
averaging them is the standard way to turn that into accuracy with inference time. On the
study's own data it bought little (+0.003 to +0.004: where members disagree, the wrong ones are
about as confident as the right one; ``docs/evaluation.md``). Members must answer the same
question: the same heads (name and kind), class names, box and voxel size. Class and mask scores
are averaged as log-probabilities (a normalised geometric mean, as over the turns of
:mod:`~dsmnet.training.tta`), densities voxel by voxel in the first member's units (each run
scales its density target by a factor measured on its own training split). Each member keeps its
own test-time turns (those of the wedge it was trained for).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from dsmnet.dataset.mrc import DataError
from dsmnet.training.metrics import two_class_mask
from dsmnet.training.runtime import Runtime
from dsmnet.training.settings import RunSettings
from dsmnet.training.step import load_trained
from dsmnet.training.tta import mean_outputs, with_turns


class Ensemble(nn.Module):
    """The mean of ``members``' outputs (each a model with the same ``targets``); each member's
    densities are first multiplied by its ``density_factors`` entry (default 1: the same units)."""

    def __init__(self, members: Sequence[nn.Module], density_factors: Sequence[float] | None = None):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.targets = dict(members[0].targets)
        self.density_factors = list(density_factors or [1.0] * len(members))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return mean_outputs(
            (self._answer(member, factor, x) for member, factor in zip(self.members, self.density_factors)),
            self.targets,
        )

    def _answer(self, member: nn.Module, factor: float, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """One member's outputs: class and mask scores as log-probabilities, densities in the first's units."""
        out = {}
        for head, value in member(x).items():
            value = value.float()
            if self.targets[head] in ("class", "mask"):
                value = value.log_softmax(1)
            elif self.targets[head] == "density":
                value = value * factor
            out[head] = value
        return out


def answered_by(run, state: dict) -> list[dict]:
    """The run, or an ensemble's runs, with the best epoch of each: what evaluate and predict record."""
    members = state.get("members") or [{"run": str(run), "epoch": state.get("best_epoch")}]
    return [{"run": m["run"], "epoch": m["epoch"]} for m in members]


def _what_it_answers(state: dict, targets: dict) -> dict:
    """What members of one ensemble must share, by the name a refusal gives it."""
    return {
        "heads": targets,
        "class names": state["classes"],
        "box": list(state["spec"]["input"]["shape"]),
        "voxel size": state.get("voxel_size"),
    }


def _shown(value, other) -> str:
    """``value`` for a one-line refusal: of two lists of names, where they first differ."""
    if isinstance(value, list) and isinstance(other, list) and len(value) > 4:
        at = next((i for i, (a, b) in enumerate(zip(value, other)) if a != b), min(len(value), len(other)))
        shown = f"{value[at]!r} at position {at + 1}" if at < len(value) else "nothing more"
        return f"{len(value)} of them, {shown}"
    return str(value)


def _load(run, rt: Runtime, tta: bool) -> tuple[nn.Module, nn.Module, dict, RunSettings]:
    model, criterion, state = load_trained(Path(run), "best", rt)
    settings = RunSettings.from_dict(state["settings"])
    return with_turns(model, tta, settings.wedge, settings.wedge_axis), criterion, state, settings


def _member(run, state: dict) -> dict:
    """What an ensemble keeps of a member: its run and best epoch, and the data and split it
    trained on (``evaluate`` refuses a split that a member may have trained on)."""
    return {
        "run": str(run),
        "epoch": state["best_epoch"],
        "data_fingerprint": state.get("data_fingerprint"),
        "split": state.get("split"),
    }


def _refuse_threshold_without_two_class_mask(run, model: nn.Module, state: dict, rt: Runtime, threshold: float):
    """A foreground threshold applies to a target/background mask only: refuse it, naming the run
    and its heads, for a run whose heads draw none (no mask head, or only masks of 3+ classes — a
    head's class count is read off one blank box through the model, which also serves plugin heads)."""
    targets = dict(model.targets)
    out = {}
    if "mask" in targets.values():
        box = torch.zeros(1, state["spec"]["input"].get("channels", 1), *state["spec"]["input"]["shape"])
        with torch.no_grad(), rt.autocast():
            out = model.eval()(rt.input(box))
    if not any(two_class_mask(targets[head], value) for head, value in out.items()):  # what at_threshold cuts
        count = {h: f", {value.shape[1]} classes" for h, value in out.items() if targets[h] == "mask"}
        heads = ", ".join(f"{h} ({kind}{count.get(h, '')})" for h, kind in targets.items())
        raise DataError(f"{run}: --mask-threshold {threshold}, but its heads draw no two-class mask: {heads}")


def load_for_use(
    run, rt: Runtime, tta: bool = False, ensemble: Sequence[str | Path] = (), mask_threshold: float | None = None
) -> tuple[nn.Module, nn.Module, dict, RunSettings]:
    """A run's best checkpoint ready for ``evaluate`` and ``predict``: its model (averaged over the
    turns of the wedge it was trained for, with ``tta``, and with the runs of ``ensemble``), its
    loss, the checkpoint and its settings (the first run's; an ensemble's checkpoint dict also
    lists every member as ``members``, :func:`_member`).

    Raises:
        DataError: a member answers another question than the first run (naming both and what
            differs); a ``mask_threshold`` for a run without a two-class mask head.
    """
    model, criterion, state, settings = _load(run, rt, tta)
    if mask_threshold is not None:
        _refuse_threshold_without_two_class_mask(run, model, state, rt, mask_threshold)
    if not ensemble:
        return model, criterion, state, settings
    question = _what_it_answers(state, dict(model.targets))
    members, scales, state["members"] = [model], [settings.density_scale], [_member(run, state)]
    for path in ensemble:
        other, _, other_state, other_settings = _load(path, rt, tta)
        for what, value in _what_it_answers(other_state, dict(other.targets)).items():
            if value != question[what]:
                raise DataError(
                    f"{path}: its {what}: {_shown(value, question[what])}, but {run}'s: "
                    f"{_shown(question[what], value)}; an ensemble averages runs that answer the same question"
                )
        members.append(other)
        scales.append(other_settings.density_scale)
        state["members"].append(_member(path, other_state))
    return Ensemble(members, [scales[0] / scale for scale in scales]), criterion, state, settings

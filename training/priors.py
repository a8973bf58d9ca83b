"""What a run starts from and what its BatchNorm layers see: the class count fitted to the data,
heads initialised from the training split's statistics, the density target's scale, and
"precise BN" statistics before each validation."""

from __future__ import annotations

import math

import torch

from dsmnet.core.build import load_spec
from dsmnet.core.spec import Spec
from dsmnet.dataset.subtomograms import Subtomograms
from dsmnet.training.batches import batch_bounds
from dsmnet.training.runtime import Runtime


def fit_classes(spec: Spec, model_targets: dict[str, str], n_classes: int) -> tuple[Spec, list[str]]:
    """Set every classification head's ``classes`` to the dataset's number of classes."""
    data = spec.to_dict()
    notes = []
    for head, kind in model_targets.items():
        if kind == "class" and data["heads"][head].get("classes") != n_classes:
            data["heads"][head]["classes"] = n_classes
            notes.append(f"heads.{head}.classes set to {n_classes}, the dataset's number of classes")
    return (load_spec(data) if notes else spec), notes


def _chunks(indices: torch.Tensor, size: int = 256):
    for start in range(0, len(indices), size):
        yield indices[start : start + size]


def target_priors(data: Subtomograms, indices: list[int], classes: int) -> dict[str, torch.Tensor]:
    """What an untrained head should predict, from the training split: class frequencies,
    voxel class frequencies of the masks, mean density (only over particles that have the target;
    volumes are read a chunk at a time)."""
    idx = torch.tensor(indices)
    out: dict[str, torch.Tensor] = {}
    for kind, values in data.targets.items():
        has = idx[data.present[kind][idx]]
        if not len(has):
            continue
        if kind == "class":
            out[kind] = torch.bincount(values[has], minlength=classes).double() + 1.0
        elif kind == "mask":
            counts = sum(torch.bincount(values[c].flatten().long(), minlength=2).double() for c in _chunks(has))
            out[kind] = counts + 1.0
        else:
            total = sum(values[c].double().sum() for c in _chunks(has))
            out[kind] = total / (len(has) * math.prod(tuple(values.shape[1:])))
    return out


def density_scale(data: Subtomograms, indices: list[int]) -> float:
    """The factor that gives the training split's density targets unit standard deviation, so that
    the recovery loss (MSE) starts at the order of the cross-entropies (the paper weights the tasks
    "to keep the order of magnitude for three tasks at the same level"); 1 without densities."""
    if "density" not in data.targets:
        return 1.0
    idx = torch.tensor(indices)
    has = idx[data.present["density"][idx]]
    values = data.targets["density"]
    n = s1 = s2 = 0.0
    for c in _chunks(has):
        v = values[c].double()
        n, s1, s2 = n + v.numel(), s1 + float(v.sum()), s2 + float((v**2).sum())
    if n < 2:
        return 1.0
    std = math.sqrt(max(s2 / n - (s1 / n) ** 2, 0.0) * n / (n - 1))
    return 1.0 / std if std > 0 else 1.0


def init_priors(model: torch.nn.Module, priors: dict[str, torch.Tensor]) -> list[str]:
    """Call ``init_prior`` on every head that has one (an optional part of the head protocol)."""
    done = []
    for head, kind in model.targets.items():
        init = getattr(model.heads[head], "init_prior", None)
        if init is not None and kind in priors:
            init(priors[kind])
            done.append(head)
    return done


@torch.no_grad()
def precise_bn(model: torch.nn.Module, data: Subtomograms, indices: torch.Tensor, rt: Runtime, batch_size: int) -> None:
    """Recompute BatchNorm statistics as exact averages over ``indices`` with the current weights
    (Wu & Johnson's "precise BN"): the running averages lag a network that is still changing fast,
    and at low SNR the gap between batch and running statistics costs much validation accuracy."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms or not len(indices):
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    model.train()
    for start, stop in batch_bounds(len(indices), batch_size):
        with rt.autocast():
            model(rt.input(data.x[indices[start:stop]]))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum

"""Ablations generated from a base spec: head subsets and loss-weight grids.

The paper's Table 1 ResNet rows are the head subsets of DSM-Net (``dsmnet[cls]`` is the Cls
subnet, ``dsmnet[cls+seg]`` the Cls+Seg model, …) and its Table 3 is a loss-weight grid
(``dsmnet[cls+seg][seg=100]``). Variants are plain specs, each re-validated.

Examples:
    >>> base = load_spec("dsmnet")
    >>> [v.name for v in generate(base, subsets=True)][:4]
    ['dsmnet[cls]', 'dsmnet[seg]', 'dsmnet[rec]', 'dsmnet[cls+seg]']
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

from dsmnet.core.build import load_spec
from dsmnet.core.errors import SpecError
from dsmnet.core.spec import Spec
from dsmnet.registry import Registries, default_registries


def _reads_decoder(spec: Spec, head: str, registries: Registries) -> bool:
    envelope = spec.heads[head]
    if envelope.from_ is not None:
        return envelope.from_ == "decoder"
    return registries.head.get(envelope.type).cls.source == "decoder"


def with_heads(spec: Spec, heads: Sequence[str], registries: Registries | None = None) -> Spec:
    """The spec restricted to ``heads``: their losses kept, the decoder dropped if nothing reads it."""
    registries = registries or default_registries()
    unknown = [h for h in heads if h not in spec.heads]
    if unknown or not heads:
        raise SpecError.at(("heads",), f"cannot keep heads {list(heads)} (heads: {', '.join(spec.heads)})")
    keep = [h for h in spec.heads if h in heads]
    data = spec.to_dict()
    data["name"] = f"{spec.name}[{'+'.join(keep)}]"
    data["heads"] = {h: data["heads"][h] for h in keep}
    data["losses"] = {h: v for h, v in data["losses"].items() if h in keep}
    if not any(_reads_decoder(spec, h, registries) for h in keep):
        data.pop("decoder", None)
    data.pop("paper", None)
    return Spec.from_dict(data)


def head_subsets(spec: Spec, registries: Registries | None = None) -> list[Spec]:
    """Every non-empty subset of the heads, smallest first, in the spec's head order."""
    names = list(spec.heads)
    return [
        with_heads(spec, combo, registries)
        for r in range(1, len(names) + 1)
        for combo in itertools.combinations(names, r)
    ]


def _fmt(weight: float) -> str:
    return f"{weight:g}"


def weight_grid(spec: Spec, grid: Mapping[str, Sequence[float]]) -> list[Spec]:
    """One variant per combination of loss weights; heads the spec lacks are left out of the grid."""
    keys = [k for k in grid if k in spec.losses]
    if not keys:
        return [spec]
    out = []
    for combo in itertools.product(*(grid[k] for k in keys)):
        data = spec.to_dict()
        for key, weight in zip(keys, combo):
            data["losses"][key]["weight"] = float(weight)
        data["name"] = f"{spec.name}[{','.join(f'{k}={_fmt(w)}' for k, w in zip(keys, combo))}]"
        data.pop("paper", None)
        out.append(Spec.from_dict(data))
    return out


def generate(
    spec: Spec,
    *,
    subsets: bool = False,
    grid: Mapping[str, Sequence[float]] | None = None,
    registries: Registries | None = None,
) -> list[Spec]:
    """Head subsets (optional), each crossed with the loss-weight grid (optional); all validated.

    Raises:
        SpecError: a grid names a head the base spec lacks, or a weight is negative, or a
            variant fails validation (its name is in the message).
    """
    registries = registries or default_registries()
    grid = dict(grid or {})
    for key, weights in grid.items():
        if key not in spec.losses:
            raise SpecError.at(("grid", key), f"no loss named {key!r} (losses: {', '.join(spec.losses)})")
        if not weights or any(w < 0 for w in weights):
            raise SpecError.at(("grid", key), f"weights must be a non-empty list of numbers ≥ 0, got {list(weights)}")
    bases = head_subsets(spec, registries) if subsets else [spec]
    variants = [v for base in bases for v in weight_grid(base, grid)]
    for variant in variants:
        load_spec(variant.to_dict(), registries)
    return variants


def filename(name: str) -> str:
    """A shell-friendly file name for a variant: ``dsmnet[cls+seg][seg=100] -> dsmnet-cls+seg-seg=100.yaml``."""
    return name.replace("][", "-").replace("[", "-").replace("]", "").replace(",", "-") + ".yaml"

"""Phase 2 of validation and the one builder that reads a spec.

:func:`resolve` checks every component's parameters against its registered model and the
spec's cross-references (losses ↔ heads, dense heads ↔ decoder); :func:`build_model` and
:func:`build_loss` construct the modules. Components themselves never see the spec.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ValidationError

from dsmnet.core.criterion import MultiTaskLoss, Task, batch_kinds
from dsmnet.core.errors import SpecError
from dsmnet.core.model import MultiTaskNet
from dsmnet.core.shapes import ShapeSpec, format_size
from dsmnet.core.spec import Envelope, Spec, read_spec, spec_error
from dsmnet.registry import Component, Registries, UnknownComponentError, default_registries

MAX_PARAMETERS = 2_000_000_000


@dataclass(frozen=True)
class Part:
    """A component chosen by a spec, with its validated parameters and its place in the YAML."""

    component: Component
    params: BaseModel
    loc: tuple[str, ...]

    def kwargs(self) -> dict[str, Any]:
        return dict(self.params)

    def construct(self, *args: Any) -> Any:
        """Instantiate; a component's own ValueError/TypeError becomes a SpecError at its place."""
        try:
            return self.component.cls(*args, **self.kwargs())
        except (ValueError, TypeError) as exc:
            raise SpecError.at(self.loc, f"{self.component.kind} {self.component.name!r}: {exc}") from None


@dataclass(frozen=True)
class Plan:
    """A fully validated spec: every part resolved, every head's source decided."""

    spec: Spec
    backbone: Part
    decoder: Part | None
    heads: dict[str, Part]
    sources: dict[str, str]
    losses: dict[str, Part]
    weighting: Part

    @property
    def targets(self) -> dict[str, str]:
        """Per head, what it predicts (its class's ``target``, checked at registration)."""
        return {n: p.component.cls.target for n, p in self.heads.items()}

    @property
    def kinds(self) -> set[str]:
        """The target kinds a batch must carry (:func:`~dsmnet.core.criterion.batch_kinds`, from the
        loss classes: known before any loss is built)."""
        return batch_kinds(self.targets, (p.component.cls for p in self.losses.values()))


def plan(spec: Spec | Plan | str | Path | Mapping[str, Any], registries: Registries | None = None) -> Plan:
    """The validated plan of a spec (a plan is returned as it is: resolve a spec once, then
    build its model, its loss and its variants from the plan)."""
    if isinstance(spec, Plan):
        return spec
    return resolve(spec if isinstance(spec, Spec) else read_spec(spec), registries)


def _part(registries: Registries, kind: str, envelope: Envelope, loc: tuple[str, ...]) -> Part:
    try:
        component = getattr(registries, kind).get(envelope.type)
    except UnknownComponentError as exc:
        raise SpecError.at((*loc, "type"), exc.message) from None
    try:
        params = component.params.model_validate(envelope.params)
    except ValidationError as exc:
        raise spec_error(exc, component.params, prefix=loc) from None
    return Part(component, params, loc)


def _collect(parts: list[tuple[str, Envelope, tuple[str, ...]]], registries: Registries) -> dict[tuple[str, ...], Part]:
    """Resolve several parts, by their place in the YAML, reporting every problem at once."""
    out, problems = {}, []
    for kind, envelope, loc in parts:
        try:
            out[loc] = _part(registries, kind, envelope, loc)
        except SpecError as exc:
            problems += exc.problems
    if problems:
        raise SpecError(problems)
    return out


def resolve(spec: Spec, registries: Registries | None = None) -> Plan:
    """Phase 2: component parameters and cross-checks. Raises :class:`SpecError`."""
    registries = registries or default_registries()
    wanted = [("backbone", spec.backbone, ("backbone",))]
    if spec.decoder is not None:
        wanted.append(("decoder", spec.decoder, ("decoder",)))
    wanted += [("head", h, ("heads", n)) for n, h in spec.heads.items()]
    wanted += [("loss", loss, ("losses", n)) for n, loss in spec.losses.items() if n in spec.heads]
    wanted.append(("weighting", spec.weighting, ("weighting",)))
    problems = []
    for name in spec.losses:
        if name not in spec.heads:
            problems.append((("losses", name), f"no head named {name!r} (heads: {', '.join(spec.heads)})"))
    for name in spec.heads:
        if name not in spec.losses:
            problems.append((("heads", name), f"head has no loss: add losses.{name}"))
    try:
        parts = _collect(wanted, registries)
    except SpecError as exc:
        problems += exc.problems
        parts = {}
    if problems:
        raise SpecError(problems)
    backbone = parts[("backbone",)]
    decoder = parts.get(("decoder",))
    heads = {n: parts[("heads", n)] for n in spec.heads}
    losses = {n: parts[("losses", n)] for n in spec.heads}
    weighting = parts[("weighting",)]

    sources = {}
    for name, head in heads.items():
        cls = head.component.cls
        target = cls.target
        loss_cls = losses[name].component.cls
        accepted = loss_cls.targets
        if target not in accepted:
            fits = [c.name for c in registries.loss if target in c.cls.targets]
            problems.append(
                (
                    ("losses", name, "type"),
                    f"loss {losses[name].component.name!r} cannot train head {name!r}, whose target is "
                    f"{target!r} (allowed: {', '.join(fits) or 'none registered'})",
                )
            )
        source = spec.heads[name].from_ or cls.source
        if source == "decoder" and decoder is None:
            problems.append(
                (
                    ("heads", name, "from"),
                    f"head {name!r} ({head.component.name}) reads the decoder, but the spec has none: "
                    "add one, e.g. 'decoder: {type: deconv3d}'",
                )
            )
        sources[name] = source
    if decoder is not None and "decoder" not in sources.values():
        problems.append((("decoder",), "no head reads the decoder: remove it, or give a head 'from: decoder'"))
    if problems:
        raise SpecError(problems)
    return Plan(spec, backbone, decoder, heads, sources, losses, weighting)


def _construct(plan: Plan) -> MultiTaskNet:
    spec = plan.spec
    factor = spec.input.bin
    if any(n % factor for n in spec.input.shape):
        raise SpecError.at(
            ("input", "bin"),
            f"{format_size(spec.input.shape)} does not divide by bin {factor} (each side must be a multiple of it)",
        )
    channels = spec.input.channels + (spec.input.centre_prior is not None)
    in_shape = ShapeSpec(channels, 1, tuple(n // factor for n in spec.input.shape))
    backbone = plan.backbone.construct(in_shape)
    feats: dict[str, ShapeSpec] = backbone.output_shape()
    deepest = next(reversed(feats))
    smallest = min(min(s.size) for s in feats.values())
    if smallest < 1 or min(in_shape.size) < max(s.stride for s in feats.values()):
        binned = f", binned {factor}× to {format_size(in_shape.size)}," if factor > 1 else ""
        raise SpecError.at(
            ("input", "shape"),
            f"{format_size(spec.input.shape)}{binned} is too small for backbone {plan.backbone.component.name!r}, "
            f"which downsamples {max(s.stride for s in feats.values())}× (each side must be at least that)",
        )
    decoder = out = None
    if plan.decoder is not None:
        decoder = plan.decoder.construct(feats)
        out = decoder.output_shape()
    allowed = ["backbone", *(f"backbone.{n}" for n in feats), *(["decoder"] if decoder is not None else [])]
    heads, sources = {}, {}
    for name, part in plan.heads.items():
        source = plan.sources[name]
        loc = ("heads", name, "from")
        if source == "decoder" and out is not None:
            shape, sources[name] = out, "decoder"
        elif source == "backbone":
            shape, sources[name] = feats[deepest], deepest
        elif source.startswith("backbone.") and source.removeprefix("backbone.") in feats:
            feat = source.removeprefix("backbone.")
            shape, sources[name] = feats[feat], feat
        else:
            raise SpecError.at(loc, f"unknown source {source!r} (allowed: {', '.join(allowed)})")
        if part.component.cls.dense and shape.stride != 1:
            raise SpecError.at(
                loc,
                f"head {name!r} ({part.component.name}) predicts per voxel and needs a full-resolution "
                f"input, but {source!r} is at stride {shape.stride}: read a decoder instead",
            )
        heads[name] = part.construct(shape)
    return MultiTaskNet(
        backbone, decoder, heads, sources, plan.targets, spec, bin=factor, centre_prior=spec.input.centre_prior
    )


def build_model(
    spec: Spec | Plan | str | Path | Mapping[str, Any],
    registries: Registries | None = None,
    device: torch.device | str | None = None,
) -> MultiTaskNet:
    """Build the network a spec (or its :class:`Plan`) describes (on ``device``, e.g. ``"meta"``
    for a dry run)."""
    resolved = plan(spec, registries)
    with torch.device(device or "cpu"):
        return _construct(resolved)


def build_loss(
    spec: Spec | Plan | str | Path | Mapping[str, Any], registries: Registries | None = None
) -> MultiTaskLoss:
    """Build the multi-task loss of a spec (or its :class:`Plan`): each head's loss and the weighting."""
    resolved = plan(spec, registries)
    losses = {n: p.construct() for n, p in resolved.losses.items()}
    tasks = {n: Task(resolved.spec.losses[n].weight, p.component.cls.kind) for n, p in resolved.losses.items()}
    return MultiTaskLoss(losses, resolved.targets, resolved.weighting.construct(tasks))


def load_spec(source: str | Path | Mapping[str, Any], registries: Registries | None = None) -> Spec:
    """Read and fully validate a spec: envelope, component parameters, cross-checks and shapes.

    The model is dry-run built on the ``meta`` device, so nothing is allocated.

    Args:
        source: a YAML file, a built-in spec's name (e.g. ``"dsmnet"``) or a mapping.

    Raises:
        SpecError: naming the file, the YAML path, the bad value and the allowed ones.
    """
    spec = read_spec(source)
    where = None if isinstance(source, Mapping) else str(source)
    try:
        resolved = resolve(spec, registries)
        model = build_model(resolved, device="meta")
        build_loss(resolved)
    except SpecError as exc:
        raise (exc.with_source(where) if where and not exc.source else exc) from None
    n = sum(p.numel() for p in model.parameters())
    if n > MAX_PARAMETERS:
        raise SpecError.at((), f"the model would have {n:,} parameters (limit {MAX_PARAMETERS:,})", where)
    return spec

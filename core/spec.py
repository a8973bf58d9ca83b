"""Specs: pure-data descriptions of a network, validated with pydantic (phase 1 of 2).

Phase 1 checks the envelope — top-level keys, the input, each component's ``type`` — and keeps
each component's other keys as its parameters. Phase 2 (:mod:`dsmnet.core.build`) validates
those against the registered component's own parameter model, so an error points at, e.g.,
``heads.seg.classes``.
"""

from __future__ import annotations

import difflib
import importlib.resources
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from dsmnet.core.errors import SpecError

Name = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=64)]
Dim = Annotated[int, Field(ge=1, le=1024)]


class Envelope(BaseModel):
    """A component: its registered ``type`` and, as extra keys, its parameters."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)
    type: Name

    @property
    def params(self) -> dict[str, Any]:
        """The component's own parameters (every key but the envelope's)."""
        return dict(self.model_extra or {})


class HeadEnvelope(Envelope):
    """A head; ``from`` names what it reads (``backbone``, ``backbone.<feature>`` or ``decoder``)."""

    from_: str | None = Field(default=None, alias="from")
    model_config = ConfigDict(extra="allow", populate_by_name=True, allow_inf_nan=False)


class LossEnvelope(Envelope):
    """A head's loss and its weight in the total (the paper: cls:seg:rec = 1:10:1)."""

    weight: Annotated[float, Field(ge=0.0)] = 1.0


class InputSpec(BaseModel):
    """The subtomograms the network takes."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    shape: tuple[Dim, Dim, Dim] = (40, 40, 40)
    channels: Annotated[int, Field(ge=1, le=64)] = 1
    voxel_size: Annotated[float, Field(gt=0.0)] | None = Field(default=None, description="Å per voxel")
    # the network works on the box Fourier-cropped by this factor (voxels ``bin``× larger, the
    # frequencies both grids hold kept exactly) and returns its per-voxel outputs resized back
    # to ``shape``: losses, metrics and predictions stay at the box's own voxels
    bin: Annotated[int, Field(ge=1, le=8)] = 1
    # telling the network where its target is: one more input channel beside the box, a centred
    # Gaussian of this width (σ as a fraction of the box side), made inside the network so
    # augmentation, validation and predict see it alike; None: off (the paper's)
    centre_prior: Annotated[float, Field(gt=0.0, le=1.0)] | None = None


class TrainingSpec(BaseModel):
    """The training protocol; defaults are the paper's (§3.2)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: Annotated[float, Field(gt=0.0)] = 1e-3
    betas: tuple[Annotated[float, Field(ge=0, lt=1)], Annotated[float, Field(ge=0, lt=1)]] = (0.9, 0.99)
    weight_decay: Annotated[float, Field(ge=0.0)] = 0.0
    batch_size: Annotated[int, Field(ge=1)] = 64
    epochs: Annotated[int, Field(ge=1)] = 100
    patience: Annotated[int, Field(ge=1)] = 15
    # the learning rate over the run, after a linear warm-up over ``warmup`` epochs: the paper's
    # constant rate, a cosine decay to zero at ``epochs`` (set per batch from the epoch and the
    # batch's number, so a resumed run continues on the same curve), or ``plateau``: constant, and
    # multiplied by ``plateau_factor`` after every ``plateau_patience`` epochs without a lower
    # validation loss (a run of open length that ends by early stopping: ``patience`` counts on)
    schedule: Literal["constant", "cosine", "plateau"] = "constant"
    warmup: Annotated[int, Field(ge=0)] = 0
    plateau_patience: Annotated[int, Field(ge=1)] = 5
    plateau_factor: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.2
    # the plateau schedule's floor: the run has finished learning once a reduction takes the rate
    # below it (a rate that no longer moves the weights, where a lower validation loss is precise
    # BN's sample and not learning); None: only ``patience`` stops the run (the paper's)
    min_lr: Annotated[float, Field(gt=0.0)] | None = None
    # weight averaging: validation, best.pt and every later use take an exponential moving average
    # of the weights with this decay per step (0: off, the paper's; 0.999 averages over ~1000 steps)
    ema: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0

    @field_validator("min_lr")
    @classmethod
    def _floor_of_a_plateau(cls, value: float | None, info: ValidationInfo) -> float | None:
        problem = floor_problem(info.data.get("schedule", "constant"), info.data.get("lr"), value)
        if problem:
            raise ValueError(problem)
        return value


def floor_problem(schedule: str, lr: float | None, min_lr: float | None) -> str | None:
    """Why ``min_lr`` cannot go with this schedule and peak rate, or None (also asked of a run's
    settings once the command line's overrides are in)."""
    if min_lr is None or min_lr == 0:
        return None
    if schedule != "plateau":
        return f"min_lr is a floor for the plateau schedule, and the schedule is {schedule}"
    if lr is not None and min_lr >= lr:
        return f"min_lr must be below the peak rate, lr {lr}"
    return None


class Spec(BaseModel):
    """A network: backbone, optional decoder, heads, their losses and how losses are weighted."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    name: Annotated[str, Field(min_length=1, max_length=200)]
    description: str = ""
    paper: str | None = Field(default=None, description="the paper's table row this spec reproduces")
    input: InputSpec = InputSpec()
    backbone: Envelope
    decoder: Envelope | None = None
    heads: Annotated[dict[Name, HeadEnvelope], Field(min_length=1)]
    losses: dict[Name, LossEnvelope]
    weighting: Envelope = Envelope(type="weighted_sum")
    training: TrainingSpec = TrainingSpec()

    @field_validator("name")
    @classmethod
    def _one_printable_line(cls, name: str) -> str:
        # names become run folders and YAML scalars: no control characters or line breaks
        # (YAML reads U+0085, U+2028 and U+2029 as line breaks too)
        bad = [c for c in name if not c.isprintable() and c != " "]
        if bad:
            raise ValueError(f"a spec name must be one line of printable characters, found {bad[0]!r}")
        return name

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists, dicts, numbers, strings) that :meth:`from_dict` reads back."""
        data = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        if data["input"]["bin"] == 1:  # the default is left out, so specs written before it read alike
            del data["input"]["bin"]
        return data

    def to_yaml(self) -> str:
        """The spec as YAML (short lists of numbers inline, as a person writes them)."""
        return yaml.dump(self.to_dict(), Dumper=_SpecDumper, sort_keys=False, allow_unicode=True)

    @classmethod
    def from_dict(cls, data: Any, source: str | None = None) -> Spec:
        """Phase 1: check the envelope. Raises :class:`SpecError`."""
        if not isinstance(data, Mapping):
            raise SpecError.at((), f"a spec must be a mapping, got {type(data).__name__}", source)
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise spec_error(exc, cls, source=source) from None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str] | None:
    """The keys a model accepts at ``loc`` (walking nested models, optionals and dicts)."""
    annotation: Any = model
    for item in loc:
        while True:  # unwrap Annotated / Optional / dict values
            origin = typing.get_origin(annotation)
            if origin is Annotated:
                annotation = typing.get_args(annotation)[0]
            elif origin in (typing.Union, types.UnionType):
                annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
            else:
                break
        if typing.get_origin(annotation) is dict:
            annotation = typing.get_args(annotation)[1]
            continue
        if isinstance(annotation, type) and issubclass(annotation, BaseModel) and item in annotation.model_fields:
            annotation = annotation.model_fields[item].annotation
            continue
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return [f.alias or n for n, f in annotation.model_fields.items()]
        return None
    return None


def spec_error(
    exc: ValidationError, model: type[BaseModel], prefix: tuple = (), source: str | None = None
) -> SpecError:
    """Turn pydantic's errors into one :class:`SpecError` with YAML paths and allowed values."""
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        if err["type"] == "extra_forbidden":
            allowed = _fields_at(model, loc) or []
            close = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            msg = f"unknown key{hint} (allowed: {', '.join(sorted(allowed))})"
        elif err["type"] == "missing":
            msg = "required, but missing"
        else:
            msg = f"{err['msg']} (got {_short(err.get('input'))})"
        problems.append(((*prefix, *loc), msg))
    return SpecError(problems, source)


class _SpecDumper(yaml.SafeDumper):
    """Writes lists of scalars in flow style: ``widths: [32, 64, 128]``."""


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flow = all(isinstance(v, (int, float, str, bool)) or v is None for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_SpecDumper.add_representer(list, _represent_list)


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that rejects duplicate mapping keys instead of keeping the last one."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_yaml(text: str, source: str | None = None) -> Any:
    """Parse YAML text; syntax errors become a :class:`SpecError` with line and column."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError.at((), f"{where}invalid YAML: {problem}", source) from None


def builtin_specs() -> dict[str, str]:
    """The specs shipped inside the package: ``{name: yaml text}``."""
    root = importlib.resources.files("dsmnet.specs")
    return {
        p.name.removesuffix(".yaml"): p.read_text()
        for p in sorted(root.iterdir(), key=lambda p: p.name)
        if p.name.endswith(".yaml")
    }


def read_spec(source: str | Path | Mapping[str, Any]) -> Spec:
    """Phase 1 only: a file path, a built-in spec's name, or a mapping → :class:`Spec`."""
    if isinstance(source, Mapping):
        return Spec.from_dict(source)
    if not isinstance(source, (str, Path)):
        return Spec.from_dict(source)  # not a mapping: a clear SpecError
    path = Path(source)
    if path.is_file():
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise SpecError.at((), f"cannot read: {exc}", str(path)) from None
        return Spec.from_dict(parse_yaml(text, str(path)), str(path))
    builtins = builtin_specs()
    if str(source) in builtins:
        return Spec.from_dict(parse_yaml(builtins[str(source)], str(source)), f"<built-in {source}>")
    raise SpecError.at(
        (), f"no such file, and no built-in spec of that name (built-ins: {', '.join(builtins)})", str(source)
    )

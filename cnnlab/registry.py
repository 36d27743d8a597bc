"""Model registry: ``@register_model`` and the papers' figures (``create_model`` and
``list_models`` live in :mod:`cnnlab.models`, which imports every family first).

Every builder is registered together with the paper it comes from and the paper's reference
figures (parameters, multiply-adds, accuracy, the table they are printed in). ``cnnlab verify``
checks the figures against the profiler; see :mod:`cnnlab.verify`.

A figure is written as the paper prints it, e.g. ``"4.2M"`` or ``"569M"``: the tolerance is
half a unit in its last printed digit, so a figure passes exactly when the network's count
rounds to what the paper printed. An ``int`` is an exact count. Where a paper's figure is not
the network's, the reference records the network's count as ``exact_params``/``exact_macs``
together with a ``note`` that says why; ``verify`` then checks the exact count and shows the
paper's figure beside it.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch.nn as nn


@dataclass(frozen=True)
class Paper:
    title: str
    authors: str
    year: int
    arxiv: str = ""

    def cite(self) -> str:
        arxiv = f", arXiv:{self.arxiv}" if self.arxiv else ""
        return f"{self.authors} ({self.year}), {self.title}{arxiv}"


_UNITS = {"": 1, "K": 1e3, "M": 1e6, "G": 1e9, "B": 1e9}  # B: "billion", as papers print it
_FIGURE = re.compile(r"^\s*([0-9][0-9,]*(?:\.([0-9]+))?)\s*([KMGB]?)\s*$")


@dataclass(frozen=True)
class Figure:
    """A number as printed in a paper: ``value`` with the tolerance its printed digits imply."""

    value: float
    tol: float  # absolute
    text: str

    @classmethod
    def parse(cls, spec: int | float | str) -> Figure:
        if isinstance(spec, bool):
            raise ValueError(f"not a figure: {spec!r}")
        if isinstance(spec, int):
            return cls(float(spec), 0.0, f"{spec:,}")
        if isinstance(spec, float):
            raise ValueError(
                f"write paper figures as printed strings ('4.2M') or exact ints, not {spec!r}"
            )
        m = _FIGURE.match(spec)
        if not m:
            raise ValueError(f"cannot read paper figure {spec!r} (expected e.g. '4.2M', '569M')")
        digits, frac, unit = m.group(1).replace(",", ""), m.group(2) or "", m.group(3)
        scale = _UNITS[unit]
        return cls(float(digits) * scale, 0.5 * 10 ** (-len(frac)) * scale, spec.strip())

    def matches(self, measured: float) -> bool:
        return abs(measured - self.value) <= self.tol * (1 + 1e-9) + 1e-9


@dataclass(frozen=True)
class Reference:
    """A paper's figures for one configuration of a model."""

    input_size: tuple[int, ...]
    table: str
    params: Figure | None = None
    macs: Figure | None = None
    exact_params: Figure | None = None
    exact_macs: Figure | None = None
    size_mib: Figure | None = None  # fp32 model size in MiB, the "MB" of SqueezeNet's tables
    exact_size_mib: Figure | None = None
    top1: float | None = None
    top5: float | None = None
    note: str = ""
    kwargs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any], default_input: tuple[int, ...]) -> Reference:
        d = dict(d)
        known = {"input_size", "table", "params", "macs", "exact_params", "exact_macs",
                 "size_mib", "exact_size_mib", "top1", "top5", "note", "kwargs"}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown reference keys {sorted(unknown)}")
        if "table" not in d:
            raise ValueError("a reference must name the table its figures come from")
        if any(k.startswith("exact_") for k in d) and not d.get("note"):
            raise ValueError("a reference with exact counts that differ from the paper needs"
                             " a note")
        fig = {k: Figure.parse(d[k]) for k in ("params", "macs", "exact_params", "exact_macs",
                                                 "size_mib", "exact_size_mib")
               if d.get(k) is not None}
        return cls(
            input_size=tuple(d.get("input_size", default_input)),
            table=d["table"],
            top1=d.get("top1"),
            top5=d.get("top5"),
            note=d.get("note", ""),
            kwargs=dict(d.get("kwargs", {})),
            **fig,
        )


@dataclass(frozen=True)
class ModelInfo:
    name: str
    builder: Callable[..., nn.Module]
    family: str
    paper: Paper | None
    input_size: tuple[int, ...]
    num_classes: int
    references: tuple[Reference, ...]
    defaults: dict[str, Any]

    @property
    def doc(self) -> str:
        return inspect.getdoc(self.builder) or ""


_REGISTRY: dict[str, ModelInfo] = {}


def bind(builder: Callable, name: str, fixed: dict[str, Any], defaults: dict[str, Any],
         doc: str | None = None) -> Callable[..., nn.Module]:
    """``builder`` with the ``fixed`` arguments bound (a caller can no longer pass them) and
    ``defaults`` shown as its defaults; its signature, docstring and module are the variant's,
    so ``create_model`` checks arguments against it and ``cnnlab list`` files it under the
    builder's family."""
    sig = inspect.signature(builder)
    takes_any = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    unknown = [k for k in [*fixed, *defaults] if k not in sig.parameters and not takes_any]
    if unknown:
        raise ValueError(f"{name}: {builder.__name__} takes no argument(s) {unknown}")
    params = [p.replace(kind=p.KEYWORD_ONLY, default=defaults.get(p.name, p.default))
              if p.kind is not p.VAR_KEYWORD else p
              for p in sig.parameters.values() if p.name not in fixed]

    def build(**kwargs):
        return builder(**fixed, **kwargs)

    build.__signature__ = sig.replace(parameters=params)
    build.__wrapped__ = builder  # the family's builder (the signature above still rules)
    build.__name__ = build.__qualname__ = name
    build.__module__ = builder.__module__
    build.__doc__ = doc or builder.__doc__
    return build


def register_model(
    fn: Callable | None = None,
    *,
    name: str | None = None,
    paper: Paper | None = None,
    input_size: tuple[int, ...] = (3, 224, 224),
    num_classes: int = 1000,
    reference: dict | list[dict] | None = None,
    defaults: dict[str, Any] | None = None,
    fixed: dict[str, Any] | None = None,
    doc: str | None = None,
):
    """Register a model builder, as a decorator or called on a family's builder to register
    one variant of it: ``register_model(resnet, name="resnet50", fixed={"depth": 50}, ...)``.

    ``reference`` is one dict or a list of dicts (one per configuration the paper reports,
    e.g. each width multiplier), with keys ``params``, ``macs`` (figures as printed), ``table``,
    ``input_size``, ``top1``, ``top5``, ``kwargs`` (builder arguments for that row),
    ``size_mib`` (fp32 size in MiB, written as printed: ``"4.8"`` for "4.8 MB"),
    and, where the paper's figure is not the network's, ``exact_params``/``exact_macs`` and
    ``note``. ``fixed`` are builder arguments bound under this name (the variant's depth,
    configuration, ...; a caller cannot pass them); ``defaults`` are arguments a caller may
    still override (``vgg16_bn`` = ``vgg16`` with ``batch_norm=True``). ``doc`` is the
    variant's docstring (the builder's when not given). Called on a builder it returns the
    variant's builder; as a decorator it leaves the decorated function as it is.
    """

    def wrap(builder: Callable) -> Callable:
        model_name = name or builder.__name__
        if model_name in _REGISTRY:
            raise ValueError(f"model {model_name!r} is registered twice")
        original = builder
        if fixed or defaults or doc:
            builder = bind(builder, model_name, dict(fixed or {}), dict(defaults or {}), doc)
        refs = reference if isinstance(reference, list) else [reference] if reference else []
        family = builder.__module__.rsplit(".", 1)[-1]
        _REGISTRY[model_name] = ModelInfo(
            name=model_name,
            builder=builder,
            family=family,
            paper=paper,
            input_size=tuple(input_size),
            num_classes=num_classes,
            references=tuple(Reference.from_dict(r, tuple(input_size)) for r in refs),
            defaults=dict(defaults or {}),
        )
        return builder if fn is not None else original  # a decorator leaves the function be

    return wrap(fn) if fn is not None else wrap


def registered(name: str | None) -> ModelInfo | None:
    """The registry's entry for ``name`` (None if there is none), for code below
    :mod:`cnnlab.models` that meets an already built model; :func:`cnnlab.models.model_info`
    is the user's lookup."""
    return _REGISTRY.get(name) if name else None

"""Model registry: ``create_model``, ``list_models`` and ``@register_model``.

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

import difflib
import fnmatch
import inspect
import os
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


def _load_models() -> None:
    import cnnlab.models  # noqa: F401  (registers every family)


def list_models(pattern: str | list[str] | None = None) -> list[str]:
    """Sorted registered names, optionally filtered by glob pattern(s), ignoring case as
    timm's ``list_models("*ResNet*")`` does."""
    _load_models()
    names = sorted(_REGISTRY)
    if pattern is None:
        return names
    patterns = [p.lower() for p in ([pattern] if isinstance(pattern, str) else pattern)]
    return [n for n in names if any(fnmatch.fnmatchcase(n.lower(), p) for p in patterns)]


def model_info(name: str) -> ModelInfo:
    _load_models()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=5, cutoff=0.5)
        if not close:
            close = [n for n in sorted(_REGISTRY) if n.startswith(name.split("_")[0])][:5]
        hint = f"; did you mean {', '.join(close)}?" if close else "; see `cnnlab list`"
        raise ValueError(f"unknown model {name!r}{hint}")
    return _REGISTRY[name]


def _check_common(name: str, kwargs: dict) -> None:
    """The arguments every model shares, checked once here rather than in each family."""
    for key, least in (("num_classes", 0), ("in_chans", 1)):
        v = kwargs.get(key)
        if key in kwargs and (isinstance(v, bool) or not isinstance(v, int) or v < least):
            headless = " (or 0 for a headless model)" if key == "num_classes" else ""
            raise ValueError(f"{name}: {key} must be a positive integer{headless}, got {v!r}")
    rate = kwargs.get("drop_rate", 0.0)
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
        raise ValueError(f"{name}: drop_rate must be in [0, 1), got {rate!r}")


IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _pretrained_cfg(info: ModelInfo, model: nn.Module, kwargs: dict) -> dict:
    """What a user of the weights needs (timm's ``pretrained_cfg`` keys): the input size,
    the normalisation, how to resize and crop, the classes, and where the weights came from."""
    chans = int(kwargs.get("in_chans", info.input_size[0]))
    size = getattr(model, "default_input_size", None) or (chans, *info.input_size[1:])
    imagenet = chans == 3 and info.num_classes == 1000
    return {"input_size": tuple(size),
            "mean": IMAGENET_MEAN if imagenet else (0.5,) * chans,
            "std": IMAGENET_STD if imagenet else (0.5,) * chans,
            "interpolation": "bicubic" if getattr(model, "release", "") == "tf" else "bilinear",
            "crop_pct": 0.875 if imagenet else 1.0,
            "num_classes": getattr(model, "num_classes", kwargs.get("num_classes",
                                                                   info.num_classes)),
            "release": getattr(model, "release", "paper"),
            "source": "initialised (no weights loaded)"}


def _load_pretrained(name: str, model: nn.Module, pretrained) -> None:
    from cnnlab.bundled import load_bundled, tags

    if pretrained is True:
        load_bundled(name, model)
        return
    if isinstance(pretrained, str) and pretrained in tags(name) \
            and not os.path.exists(pretrained):
        load_bundled(name, model, pretrained)
        return
    from cnnlab.pretrained import load_weights

    load_weights(model, pretrained)


def _release(info: ModelInfo, release: str):
    import sys

    from cnnlab.layers.release import resolve

    module = sys.modules.get(getattr(info.builder, "__module__", ""), None)
    return resolve(info.name, getattr(module, "RELEASES", {}), release)


def create_model(name: str, *, features_only: bool = False,
                 out_indices: tuple[int, ...] | None = None, release: str = "paper",
                 pretrained=None, **kwargs) -> nn.Module:
    """Build a registered model: ``create_model("mobilenet_v1", width_mult=0.5)``.

    Keyword arguments go to the builder (``num_classes``, ``in_chans``, ``drop_rate`` and the
    family's own, e.g. ``width_mult``). Unknown keywords raise ``ValueError`` naming the valid
    ones. The model's ``init_weights()`` runs once it is built (a no-op under
    :func:`cnnlab.profile.skip_init`).

    As in timm: ``num_classes=0`` gives a classifier without its classifier layer, whose
    ``forward`` returns the pooled features (``model.num_features`` wide);
    ``features_only=True`` returns a :class:`cnnlab.models.base.FeatureExtractor` that yields
    the feature maps at each stride, ``out_indices`` (indices into ``feature_info``) picks
    some of them.

    ``release`` picks the paper's network (``"paper"``, the default) or a released one
    (``"tf"``, ``"torchvision"``, ...: what differs is in the model's docstring and
    :mod:`cnnlab.layers.release`). ``pretrained=PATH`` copies a peer's released weights
    (torchvision, timm; safetensors or ``torch.load(weights_only=True)`` files) into it, see
    :func:`cnnlab.pretrained.load_weights`; ``pretrained=True`` loads the weights bundled in
    the package, ``pretrained="digits"`` those tagged so (``cnnlab list --pretrained``).
    ``model.pretrained_cfg`` (timm's name) holds the
    input size, normalisation, crop and the weights' source.
    """
    info = model_info(name)
    rel = _release(info, release)
    params = inspect.signature(info.builder).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    if not takes_any:
        bad = [k for k in kwargs if k not in params]
        if bad:
            valid = ", ".join(p for p in params if p != "kwargs")
            raise ValueError(f"{name}: unknown argument(s) {', '.join(bad)}; valid: {valid}")
    _check_common(name, kwargs)
    if out_indices is not None and not features_only:
        raise ValueError(f"{name}: out_indices needs features_only=True")
    headless = kwargs.get("num_classes") == 0
    if headless:
        del kwargs["num_classes"]
    model = info.builder(**{**info.defaults, **dict(rel.builder_args), **kwargs})
    if hasattr(model, "init_weights"):
        model.init_weights()
    rel.apply(model)
    model.model_name = name
    model.pretrained_cfg = _pretrained_cfg(info, model, kwargs)
    if pretrained is not None and pretrained is not False:
        _load_pretrained(name, model, pretrained)
    if headless:
        if getattr(model, "dense_prediction", False):
            raise ValueError(f"{name}: num_classes=0 (headless) is for classifiers; {name} "
                             "predicts a score map per pixel")
        model.reset_classifier(0)
    if features_only:
        from cnnlab.models.base import FeatureExtractor

        return FeatureExtractor(model, out_indices)
    return model

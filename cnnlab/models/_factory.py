"""``create_model``, ``list_models`` and ``model_info`` over the registry (timm's
``_factory``): importing :mod:`cnnlab.models` registers every family first, so the registry
itself imports no model."""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import os

import torch.nn as nn

from cnnlab.models.base import FeatureExtractor
from cnnlab.registry import _REGISTRY, ModelInfo


def list_models(pattern: str | list[str] | None = None) -> list[str]:
    """Sorted registered names, optionally filtered by glob pattern(s), ignoring case as
    timm's ``list_models("*ResNet*")`` does."""
    names = sorted(_REGISTRY)
    if pattern is None:
        return names
    patterns = [p.lower() for p in ([pattern] if isinstance(pattern, str) else pattern)]
    return [n for n in names if any(fnmatch.fnmatchcase(n.lower(), p) for p in patterns)]


def model_info(name: str) -> ModelInfo:
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
    ``model.pretrained_cfg`` (timm's name) holds the input size, normalisation, crop and the
    weights' source.
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
        return FeatureExtractor(model, out_indices)
    return model

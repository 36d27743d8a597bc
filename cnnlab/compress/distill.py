"""Knowledge distillation (Hinton, Vinyals, Dean 2015, "Distilling the Knowledge in a Neural
Network", arXiv 1503.02531; deck 002:1469-1596, deck 004:27-63).

The teacher's logits v, divided by a temperature T, give soft targets p = softmax(v/T); the
student's logits z at the same T give q = softmax(z/T). The loss (Sec. 2) is

    α · T² · CE(p, q)  +  (1 − α) · CE(y, softmax(z))

whose soft part has gradient ∂C/∂z_i = (q_i − p_i)/T (Sec. 2.1); the T² factor keeps its
magnitude independent of T, and for T large against the logits (zero-mean) the gradient
tends to (z_i − v_i)/(N·T²): matching logits is the high-temperature limit. After training
the student predicts at T = 1 (its plain forward).

A teacher is any callable from an input batch to logits: a module, an :class:`Ensemble`
(averaged probabilities, or averaged logits = the geometric mean of the probabilities), or
:class:`SoftTargets` (a teacher's logits stored on disk for an un-augmented transfer set).
:class:`DistillLoss` is a ``loss_fn`` for :func:`cnnlab.train.train`: the trainer passes it
``inputs=``, so the teacher runs on the very batch the student sees (the same augmentation);
called without inputs (validation) it is the student's plain cross-entropy at T = 1.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnlab.io import atomic_path
from cnnlab.train.evaluate import main_output

COMBINE = ("probs", "logits")


def soft_cross_entropy(p: torch.Tensor, z: torch.Tensor, T: float = 1.0) -> torch.Tensor:
    """C = −Σ_i p_i log softmax(z/T)_i, averaged over the batch."""
    return -(p * F.log_softmax(z / T, dim=1)).sum(1).mean()


def _follow(module: nn.Module, device: torch.device) -> None:
    """Put a teacher where the student's batches are: the trainer moves only the student."""
    t = next(itertools.chain(module.parameters(), module.buffers()), None)  # every step
    if t is not None and t.device != device:
        module.to(device)


def soft_targets(teacher, x: torch.Tensor, T: float) -> torch.Tensor:
    """The teacher's softmax at temperature T (an ensemble combines its members' at T)."""
    with torch.no_grad():
        if hasattr(teacher, "soft_targets"):
            return teacher.soft_targets(x, T)
        return F.softmax(main_output(teacher(x)).float() / T, dim=1)


class Ensemble(nn.Module):
    """Several models as one (deck 002:1480: "how almost all ML competitions are won").

    ``combine="probs"``: the arithmetic mean of the members' probabilities (how ensembles are
    evaluated; the forward returns its log, so argmax and cross-entropy are those of the mean);
    ``combine="logits"``: the mean of the logits, i.e. the normalised geometric mean of the
    probabilities (the deck's "geometric ensemble"). At temperature T each member's softmax
    at T is combined the same way (:meth:`soft_targets`). Members must share the classes."""

    def __init__(self, models, combine: str = "probs"):
        super().__init__()
        if combine not in COMBINE:
            raise ValueError(f"unknown ensemble combination {combine!r}; known: "
                             f"{', '.join(COMBINE)}")
        models = list(models)
        if not models:
            raise ValueError("an ensemble needs at least one model")
        self.members = nn.ModuleList(models)
        self.combine = combine

    def member_logits(self, x: torch.Tensor) -> torch.Tensor:
        outs = [main_output(m(x)).float() for m in self.members]
        if len({o.shape for o in outs}) != 1:
            raise ValueError("ensemble members disagree on the output shape: "
                             + ", ".join(str(tuple(o.shape[1:])) for o in outs))
        return torch.stack(outs)

    def soft_targets(self, x: torch.Tensor, T: float = 1.0) -> torch.Tensor:
        return combine_logits(self.member_logits(x), self.combine, T)

    def forward(self, x):
        return ensemble_output(self.member_logits(x), self.combine)


def load_model(path, name: str | None = None) -> nn.Module:
    """The model a cnnlab checkpoint holds, built from its stored name and builder arguments
    (``name`` must agree when given), in eval mode."""
    from cnnlab.models import create_model
    from cnnlab.train.checkpoint import load_checkpoint, read_meta

    if not Path(path).is_file():
        raise ValueError(f"no checkpoint at {path}")
    meta = read_meta(path)
    stored = meta.get("model")
    if name and stored and stored != name:
        raise ValueError(f"{path} holds {stored}, not {name}")
    if not (name or stored):
        raise ValueError(f"{path} does not name its model: give MODEL:CKPT")
    model = create_model(name or stored, **meta.get("model_args", {}))
    load_checkpoint(path, model)
    return model.eval()


def load_ensemble(paths, combine: str = "probs") -> Ensemble:
    """An :class:`Ensemble` of checkpoints, each ``PATH`` or ``MODEL:PATH``."""
    models = []
    for p in paths:
        name, sep, rest = str(p).partition(":")
        models.append(load_model(rest, name) if sep and not Path(p).exists() else load_model(p))
    return Ensemble(models, combine)


def combine_logits(z: torch.Tensor, combine: str, T: float = 1.0) -> torch.Tensor:
    """Members' logits (M×N×C) → the ensemble's softmax at T: the mean of the members'
    softmaxes (``"probs"``) or the softmax of the mean logits (``"logits"``, the geometric
    mean of the probabilities)."""
    if combine == "logits" or len(z) == 1:
        return F.softmax(z.mean(0) / T, dim=1)
    return F.softmax(z / T, dim=2).mean(0)


def ensemble_output(z: torch.Tensor, combine: str) -> torch.Tensor:
    """Members' logits (M×N×C) → what the ensemble's forward returns: the mean logits, or the
    log of the mean probabilities (so argmax and cross-entropy are those of the mean)."""
    if combine == "logits" or len(z) == 1:
        return z.mean(0)
    return F.softmax(z, dim=2).mean(0).clamp_min(1e-30).log()


class SoftTargets:
    """A teacher's logits (an ensemble's: each member's, M×N×C) for every image of an
    un-augmented transfer set, stored on disk so a teacher runs once for any number of
    students (Hinton et al. Sec. 2: the transfer set may be unlabelled). Stored logits, not
    probabilities: one file serves every temperature. A batch is looked up by the images
    themselves: ``K`` fixed random projections of each normalised input are its key, matched
    to the nearest stored key and checked, so an augmented or foreign image is an error
    rather than wrong targets. ``info`` (str → str) records where the targets came from."""

    K = 8

    def __init__(self, keys: torch.Tensor, logits: torch.Tensor, proj: torch.Tensor,
                 combine: str = "logits", info: dict | None = None):
        if combine not in COMBINE:
            raise ValueError(f"unknown ensemble combination {combine!r}")
        self.proj = proj.double().reshape(proj.shape[0], -1)
        self.keys = keys.double().reshape(keys.shape[0], -1)
        self.logits = logits.float() if logits.dim() == 3 else logits.float()[None]
        if self.logits.shape[1] != len(self.keys) or self.keys.shape[1] != self.proj.shape[1]:
            raise ValueError("stored soft targets: keys, logits and projection disagree")
        self.combine, self.info = combine, dict(info or {})

    @property
    def num_classes(self) -> int:
        return self.logits.shape[2]

    @property
    def input_dim(self) -> int:
        return self.proj.shape[0]

    def __len__(self) -> int:
        return len(self.keys)

    @classmethod
    def projection(cls, dim: int, seed: int = 1503) -> torch.Tensor:
        return torch.randn(dim, cls.K, generator=torch.Generator().manual_seed(seed),
                           dtype=torch.float64)

    @staticmethod
    def loader(data, batch_size: int = 500, out_size=None):
        """The un-augmented batches of ``data`` at ``out_size``, normalised as the trainer
        normalises them."""
        from cnnlab.data.loader import BatchLoader

        size = tuple(out_size or data.x.shape[-2:])
        if tuple(data.x.shape[-2:]) != size:
            raise ValueError(f"stored soft targets need images stored at the input size "
                             f"{size[0]}x{size[1]}, not {data.x.shape[-2]}x{data.x.shape[-1]} "
                             "(the trainer would crop them at random)")
        return BatchLoader(data, batch_size, train=False, out_size=size).epoch(0)

    @classmethod
    @torch.no_grad()
    def compute(cls, teacher, data, batch_size: int = 500, out_size=None,
                info: dict | None = None) -> SoftTargets:
        """Run ``teacher`` (eval mode; an :class:`Ensemble` member by member) over ``data``
        (a TensorData) as the trainer feeds it, without augmentation."""
        if isinstance(teacher, nn.Module):
            teacher.eval()
        ks, zs, proj = [], [], None
        for x, _ in cls.loader(data, batch_size, out_size):
            proj = cls.projection(x[0].numel()) if proj is None else proj
            ks.append(x.flatten(1).double() @ proj)
            z = teacher.member_logits(x) if isinstance(teacher, Ensemble) else \
                main_output(teacher(x)).float()[None]
            zs.append(z)
        if proj is None:
            raise ValueError("no images to compute soft targets for")
        combine = teacher.combine if isinstance(teacher, Ensemble) else "logits"
        return cls(torch.cat(ks), torch.cat(zs, 1), proj, combine, info)

    def nearest(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(stored row, found) for each image of ``x``: the nearest key, and whether it is
        the image's own (equal up to rounding)."""
        if x[0].numel() != self.input_dim:
            raise ValueError(f"stored soft targets are for inputs of {self.input_dim} values, "
                             f"got {x[0].numel()}")
        k = x.detach().flatten(1).double().cpu() @ self.proj
        d, pick = torch.cdist(k, self.keys).min(1)
        return pick, d <= 1e-6 * (1 + k.norm(dim=1))

    def rows(self, x: torch.Tensor) -> torch.Tensor:
        """The stored row of each image of ``x`` (ValueError if one is not stored)."""
        pick, found = self.nearest(x)
        if not found.all():
            raise ValueError("an input is not in the stored transfer set (stored soft targets "
                             "need the un-augmented images they were computed on)")
        return pick

    def missing(self, data, out_size=None) -> int:
        """How many images of ``data`` have no stored targets."""
        return sum(int((~self.nearest(x)[1]).sum())
                   for x, _ in self.loader(data, 500, out_size))

    def soft_targets(self, x: torch.Tensor, T: float = 1.0) -> torch.Tensor:
        return combine_logits(self.logits[:, self.rows(x)], self.combine, T).to(x.device)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return ensemble_output(self.logits[:, self.rows(x)], self.combine).to(x.device)

    def save(self, path) -> None:
        """Write atomically (temporary file, fsync, rename)."""
        from safetensors.torch import save_file

        meta = {**{str(k): str(v) for k, v in self.info.items()},
                "format": "cnnlab.soft_targets", "combine": self.combine}
        with atomic_path(path) as tmp:
            save_file({"keys": self.keys, "logits": self.logits.contiguous(),
                       "proj": self.proj}, str(tmp), metadata=meta)

    @classmethod
    def load(cls, path) -> SoftTargets:
        from safetensors import SafetensorError, safe_open

        if not Path(path).is_file():
            raise ValueError(f"no soft-target file at {path}")
        try:
            with safe_open(str(path), "pt") as f:
                meta = f.metadata() or {}
                t = {k: f.get_tensor(k) for k in f.keys()}
        except (SafetensorError, OSError, ValueError) as e:
            raise ValueError(f"{path} is not a soft-target file ({e})") from None
        if set(t) != {"keys", "logits", "proj"} or meta.get("format") != "cnnlab.soft_targets":
            raise ValueError(f"{path} is not a soft-target file")
        info = {k: v for k, v in meta.items() if k not in ("format", "combine")}
        return cls(t["keys"], t["logits"], t["proj"], meta.get("combine", "logits"), info)


class DistillLoss:
    """``α·T²·CE(softmax(v/T), softmax(z/T)) + (1−α)·CE(y, softmax(z))`` (Hinton et al. 2015,
    Sec. 2; MNIST: T = 20). ``alpha=1`` is pure soft-target training; ``labels=False`` ignores
    the labels (a transfer set without them). ``last`` holds the two parts of the last call."""

    def __init__(self, teacher, T: float = 20.0, alpha: float = 0.9, labels: bool = True):
        if not T > 0:
            raise ValueError(f"temperature must be positive, got {T}")
        if not 0 <= alpha <= 1:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        self.teacher, self.T, self.alpha, self.labels = teacher, float(T), float(alpha), labels
        self.last: dict[str, float] = {}

    def __call__(self, outputs, targets, inputs=None, model=None):
        z = main_output(outputs)
        if inputs is None:  # evaluation: the student at T = 1 against the labels
            return F.cross_entropy(z, targets)
        x = inputs
        if isinstance(self.teacher, nn.Module):
            _follow(self.teacher, x.device)
            if self.teacher.training:
                self.teacher.eval()
        p = soft_targets(self.teacher, x, self.T).to(z.dtype)
        if p.shape != z.shape:
            raise ValueError(f"the teacher gives {p.shape[1]} classes, the student "
                             f"{z.shape[1]}")
        soft = soft_cross_entropy(p, z, self.T)
        hard = F.cross_entropy(z, targets) if self.labels and self.alpha < 1 else z.new_zeros(())
        self.last = {"soft": float(soft.detach()), "hard": float(hard.detach())}
        w_hard = (1 - self.alpha) if self.labels else 0.0
        return self.alpha * self.T ** 2 * soft + w_hard * hard


def classifier(model: nn.Module) -> nn.Linear:
    """The final linear layer (``get_classifier()`` where the model has one)."""
    fc = model.get_classifier() if hasattr(model, "get_classifier") else None
    if not isinstance(fc, nn.Linear):
        fc = [m for m in model.modules() if isinstance(m, nn.Linear)]
        fc = fc[-1] if fc else None
    if fc is None or fc.bias is None:
        raise ValueError("the model has no final linear layer with a bias")
    return fc


@torch.no_grad()
def logits_of(model: nn.Module, data, batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, labels) of ``model`` (eval mode) over ``data`` as the evaluator feeds it."""
    from cnnlab.data.loader import BatchLoader

    was = model.training
    model.eval()
    loader = BatchLoader(data, batch_size, train=False, out_size=tuple(data.x.shape[-2:]))
    zs, ys = [], []
    for x, y in loader.epoch(0):
        zs.append(main_output(model(x)).float())
        ys.append(y)
    model.train(was)
    return torch.cat(zs), torch.cat(ys)


def fit_bias_shift(logits: torch.Tensor, labels: torch.Tensor, classes,
                   grid=None) -> tuple[float, float]:
    """The shift of the ``classes``' logits (one amount for all of them) that maximises the
    accuracy of ``logits`` on ``labels`` — Hinton et al. Sec. 3: a student that never saw a 3
    gets most 3s right once the 3's bias is raised "by the right amount", fit here on
    validation data. Returns (shift, accuracy in percent)."""
    grid = torch.linspace(-30, 30, 601) if grid is None else torch.as_tensor(grid)
    cls = torch.as_tensor(list(classes))
    best = (0.0, -1.0)
    for d in grid.tolist():
        z = logits.clone()
        z[:, cls] += d
        acc = 100.0 * float((z.argmax(1) == labels).float().mean())
        if acc > best[1] + 1e-9 or (abs(acc - best[1]) <= 1e-9 and abs(d) < abs(best[0])):
            best = (d, acc)
    return best


@torch.no_grad()
def shift_bias(model: nn.Module, classes, amount: float) -> None:
    """Add ``amount`` to the final layer's bias of ``classes``."""
    fc = classifier(model)
    fc.bias[list(classes)] += amount


def max_norm(c: float, modules=(nn.Linear,)):
    """A step hook (``train(step_hooks=...)``) that rescales each unit's incoming weight vector
    to norm ≤ ``c`` after every update: the max-norm constraint of Hinton et al. 2012 /
    Srivastava et al. 2014 (Sec. 5.1), used on the MNIST teacher (deck 002:1556)."""
    def hook(model, step):
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, modules):
                    w = m.weight.view(m.weight.shape[0], -1)
                    norm = w.norm(dim=1, keepdim=True).clamp_min(1e-12)
                    w.mul_(torch.clamp(c / norm, max=1.0))
    return hook


def temperature_softmax(z: torch.Tensor, T: float) -> torch.Tensor:
    """q_i = exp(z_i/T) / Σ_j exp(z_j/T) (deck 002:1477)."""
    return F.softmax(z / T, dim=-1)


def expected_gradient(z: torch.Tensor, v: torch.Tensor, T: float) -> torch.Tensor:
    """∂C/∂z_i = (q_i − p_i)/T (Hinton et al. Eq. 2), per example (not batch-averaged)."""
    return (temperature_softmax(z, T) - temperature_softmax(v, T)) / T


def logit_matching_gradient(z: torch.Tensor, v: torch.Tensor, T: float) -> torch.Tensor:
    """The high-temperature limit of Eq. 2 for zero-mean logits: (z_i − v_i)/(N·T²) (Eq. 4)."""
    return (z - v) / (z.shape[-1] * T * T)


__all__ = ["DistillLoss", "Ensemble", "SoftTargets", "classifier", "combine_logits",
           "ensemble_output", "expected_gradient", "fit_bias_shift", "load_ensemble",
           "load_model", "logit_matching_gradient", "logits_of", "max_norm", "shift_bias",
           "soft_cross_entropy", "soft_targets", "temperature_softmax"]

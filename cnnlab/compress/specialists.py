"""Specialist models (Hinton, Vinyals, Dean 2015, Sec. 5; deck 002:1612-1686, 004:65-92).

1. Confusable subsets: k-means on the classes' rows of the covariance of the generalist's
   predictions (Sec. 5.2: "classes that are often predicted together").
2. A specialist per subset S^m: the generalist's network with a reduced softmax — the classes
   of S^m plus one dustbin class for all others — initialised from the generalist, trained on
   data in which half the examples come from S^m, with early stopping (Sec. 5.1); afterwards
   its logits are corrected for the enrichment (log of true over training class frequency).
3. Inference (Sec. 5.3): the generalist's n most probable classes k; the active specialists
   A_k are those whose S^m meets k; the full distribution q minimises
   KL(p^g, q) + Σ_{m ∈ A_k} KL(p^m, q^m), q^m being q with the non-S^m classes summed into the
   dustbin — found by a few gradient steps on q's logits, started from the generalist's.
4. Full-softmax specialists (Sec. 6.1; deck 002:1676-1686, "a better way to prevent
   specialists over-fitting"): the generalist's whole network, softmax over all classes,
   trained on the same enriched data — hard targets at T = 1 on the images of its subset,
   the generalist's soft targets at high T on the others, which keep what it knows of the
   other classes. In the combination a full specialist's term is KL(p^m, q) over all classes
   (with only such terms the minimiser is the mean of p^g and the active p^m).
"""

from __future__ import annotations

import copy
import math
from dataclasses import replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnlab.compress.distill import classifier
from cnnlab.train.evaluate import main_output


def kmeans(x: torch.Tensor, k: int, iters: int = 100, seed: int = 0) -> torch.Tensor:
    """Cluster the rows of ``x`` into ``k`` groups (k-means++ seeding); returns labels."""
    g = torch.Generator().manual_seed(seed)
    x = x.double()
    centres = x[torch.randint(len(x), (1,), generator=g)]
    while len(centres) < k:
        d = torch.cdist(x, centres).min(1).values ** 2
        p = d / d.sum() if d.sum() > 0 else torch.full_like(d, 1 / len(d))
        centres = torch.cat([centres, x[torch.multinomial(p, 1, generator=g)]])
    labels = torch.cdist(x, centres).argmin(1)
    for _ in range(iters):
        centres = torch.stack([x[labels == j].mean(0) if (labels == j).any() else centres[j]
                               for j in range(k)])
        new = torch.cdist(x, centres).argmin(1)
        if torch.equal(new, labels):
            break
        labels = new
    return labels


def confusable_subsets(probs: torch.Tensor, n_clusters: int, seed: int = 0,
                       min_size: int = 2) -> list[list[int]]:
    """Subsets of classes the generalist confuses: k-means on the rows of the covariance of
    its predicted probabilities (N×C) over a data set; clusters with fewer than ``min_size``
    classes are dropped (a singleton needs no specialist)."""
    cov = torch.cov(probs.double().T)
    labels = kmeans(cov, n_clusters, seed=seed)
    groups = [sorted(torch.nonzero(labels == j).flatten().tolist()) for j in range(n_clusters)]
    return sorted((g for g in groups if len(g) >= min_size), key=lambda g: g[0])


def specialist_labels(y: torch.Tensor, classes) -> torch.Tensor:
    """Class c of ``classes`` → its index there; every other class → the dustbin (len)."""
    lut = torch.full((int(y.max()) + 1 if len(y) else 1,), len(classes), dtype=torch.long)
    for i, c in enumerate(classes):
        if c < len(lut):
            lut[c] = i
    return lut[y]


def make_specialist(generalist: nn.Module, classes) -> nn.Module:
    """A copy of the generalist whose final layer has the ``classes``' rows plus a dustbin
    row: the mean of the other rows, its bias raised by log(#others) so that the dustbin
    starts near the log-sum-exp of the classes it stands for."""
    spec = copy.deepcopy(generalist)
    fc = classifier(spec)
    classes = list(classes)
    others = [c for c in range(fc.out_features) if c not in classes]
    new = nn.Linear(fc.in_features, len(classes) + 1, device=fc.weight.device)
    with torch.no_grad():
        new.weight.copy_(torch.cat([fc.weight[classes], fc.weight[others].mean(0, True)]))
        new.bias.copy_(torch.cat([fc.bias[classes],
                                  fc.bias[others].mean(0, True) + math.log(len(others))]))
    for name, m in spec.named_modules():
        if m is fc:
            parent, _, child = name.rpartition(".")
            setattr(spec.get_submodule(parent) if parent else spec, child, new)
    if hasattr(spec, "num_classes"):
        spec.num_classes = len(classes) + 1
    return spec


def enriched_split(split, classes, fraction: float = 0.5, seed: int = 0, relabel: bool = True):
    """``split`` with the training set resampled so that ``fraction`` of it comes from
    ``classes`` (Sec. 5.1: half), relabelled for a dustbin specialist (classes + dustbin)
    unless ``relabel=False`` (a full-softmax specialist keeps the labels)."""
    if not 0 < fraction < 1:
        raise ValueError(f"the enriched fraction must be in (0, 1), got {fraction}")
    y = split.train.y
    inside = torch.isin(y, torch.tensor(list(classes)))
    ins, outs = torch.nonzero(inside).flatten(), torch.nonzero(~inside).flatten()
    g = torch.Generator().manual_seed(seed)
    want = round(len(outs) * fraction / (1 - fraction))
    if want >= len(ins):  # the usual case: repeat examples of the special classes
        idx = torch.cat([ins, ins[torch.randint(len(ins), (want - len(ins),), generator=g)],
                         outs])
    else:  # the special classes are most of the data already: fewer of the others
        keep = round(len(ins) * (1 - fraction) / fraction)
        idx = torch.cat([ins, outs[torch.randperm(len(outs), generator=g)[:keep]]])
    train = split.train.subset(idx.sort().values)
    if not relabel:
        return replace(split, train=train)
    train = replace(train, y=specialist_labels(train.y, classes))
    val = replace(split.val, y=specialist_labels(split.val.y, classes))
    return replace(split, train=train, val=val, num_classes=len(classes) + 1,
                   classes=[str(c) for c in classes] + ["dustbin"])


def prior_correction(split, enriched, classes, full: bool = False) -> torch.Tensor:
    """log(true frequency / enriched training frequency) per specialist output: added to
    its logits after training, this undoes the enrichment (deck 002:1634). ``full``: a
    full-softmax specialist (one output per class, labels kept)."""
    if full:
        k = split.num_classes
        true = torch.bincount(split.train.y, minlength=k).double()
    else:
        k = len(classes) + 1
        true = torch.bincount(specialist_labels(split.train.y, classes), minlength=k).double()
    seen = torch.bincount(enriched.train.y, minlength=k).double()
    return (true / true.sum()).log() - (seen / seen.sum()).log()


class _Stop(Exception):
    pass


def _early_stopped(spec: nn.Module, data, cfg, patience: int, loss_fn=None) -> None:
    """Train ``spec`` with :func:`cnnlab.train.train` and keep the weights of the best
    validation loss, stopping after ``patience`` epochs without improvement."""
    from cnnlab.train import train

    best = {"loss": math.inf, "state": copy.deepcopy(spec.state_dict()), "since": 0}

    def watch(row):
        if row["val_loss"] < best["loss"]:
            best.update(loss=row["val_loss"], state=copy.deepcopy(spec.state_dict()), since=0)
        else:
            best["since"] += 1
            if best["since"] >= patience:
                raise _Stop

    try:
        train(spec, data, cfg, loss_fn=loss_fn, epoch_hooks=[watch], progress=False)
    except _Stop:
        pass
    spec.load_state_dict(best["state"])


def _correct(spec, split, data, classes, full: bool = False) -> nn.Module:
    with torch.no_grad():
        fc = classifier(spec)
        fc.bias += prior_correction(split, data, classes, full).to(fc.bias.dtype)
    spec.special_classes, spec.full_softmax = list(classes), full
    return spec


def train_specialist(generalist: nn.Module, split, classes, cfg, patience: int = 2,
                     fraction: float = 0.5) -> nn.Module:
    """Initialise from ``generalist``, train on the enriched, relabelled data with
    :func:`cnnlab.train.train`, keep the weights of the best validation loss (early stopping
    after ``patience`` epochs without improvement), then correct for the enrichment."""
    spec = make_specialist(generalist, classes)
    data = enriched_split(split, classes, fraction, seed=cfg.seed)
    _early_stopped(spec, data, cfg, patience)
    return _correct(spec, split, data, classes)


class FullSoftmaxLoss:
    """The loss of a full-softmax specialist (deck 002:1680-1684): on the images of its
    ``classes``, cross-entropy with the hard targets at T = 1; on all others, T²·CE with the
    ``generalist``'s soft targets at temperature T (Hinton et al. Sec. 2's scaling), averaged
    over the batch. Without inputs (evaluation) it is the plain cross-entropy."""

    def __init__(self, generalist: nn.Module, classes, T: float = 20.0):
        if not T > 0:
            raise ValueError(f"temperature must be positive, got {T}")
        self.generalist, self.classes, self.T = generalist, torch.tensor(list(classes)), T

    def __call__(self, outputs, targets, inputs=None):
        from cnnlab.compress.distill import soft_targets

        z = main_output(outputs)
        if inputs is None:
            return F.cross_entropy(z, targets)
        inside = torch.isin(targets, self.classes.to(targets.device))
        hard = F.cross_entropy(z, targets, reduction="none")
        if isinstance(self.generalist, nn.Module) and self.generalist.training:
            self.generalist.eval()
        p = soft_targets(self.generalist, inputs, self.T).to(z.dtype)
        soft = -(p * F.log_softmax(z / self.T, 1)).sum(1) * self.T ** 2
        return torch.where(inside, hard, soft).mean()


def train_full_specialist(generalist: nn.Module, split, classes, cfg, T: float = 20.0,
                          patience: int = 2, fraction: float = 0.5) -> nn.Module:
    """A full-softmax specialist for ``classes``: a copy of ``generalist`` (all its outputs),
    trained on data enriched to ``fraction`` of ``classes`` with :class:`FullSoftmaxLoss`,
    early stopping on the validation loss, then corrected for the enrichment."""
    spec = copy.deepcopy(generalist)
    data = enriched_split(split, classes, fraction, seed=cfg.seed, relabel=False)
    _early_stopped(spec, data, cfg, patience, FullSoftmaxLoss(generalist, classes, T))
    return _correct(spec, split, data, classes, full=True)


def combine(p_g: torch.Tensor, specialists: list[tuple[list[int], torch.Tensor]],
            top_n: int = 1, steps: int = 100, lr: float = 0.5) -> torch.Tensor:
    """The q (N×C probabilities) minimising KL(p^g, q) + Σ_{m active} KL(p^m, q^m), where
    specialist m (classes S^m, probabilities p^m over S^m + dustbin, q^m = q with the other
    classes summed into the dustbin; or, for a full-softmax specialist, p^m over all C
    classes and q^m = q) is active for an example when S^m meets the generalist's ``top_n``
    classes. Gradient steps (Adam) on q's logits from log p^g; an example with no active
    specialist keeps p^g. ``specialists``: (S^m, p^m) or (S^m, p^m, full); without the flag
    p^m with len(S^m) + 1 columns is a dustbin specialist's."""
    p_g = p_g.detach().double()
    top = p_g.topk(top_n, dim=1).indices
    z = p_g.clamp_min(1e-12).log().clone().requires_grad_(True)
    terms = []
    for classes, p_m, *full in specialists:
        cls = torch.tensor(classes)
        full = full[0] if full else p_m.shape[1] != len(classes) + 1
        active = torch.isin(top, cls).any(1)
        if active.any():
            terms.append((cls, p_m.detach().double(), active.double(), full))
    if not terms:
        return p_g.float()
    opt = torch.optim.Adam([z], lr=lr)

    def kl(p, log_q):
        return (p * (p.clamp_min(1e-12).log() - log_q)).sum(1)

    with torch.enable_grad():
        for _ in range(steps):
            log_q = F.log_softmax(z, 1)
            loss = kl(p_g, log_q)
            for cls, p_m, active, full in terms:
                if full:  # a full-softmax specialist: no dustbin
                    loss = loss + active * kl(p_m, log_q)
                    continue
                inner = log_q[:, cls]
                rest = torch.ones(p_g.shape[1], dtype=torch.bool)
                rest[cls] = False
                dust = torch.logsumexp(log_q[:, rest], 1, keepdim=True)
                loss = loss + active * kl(p_m, torch.cat([inner, dust], 1))
            opt.zero_grad()
            loss.sum().backward()
            opt.step()
    return F.softmax(z.detach(), 1).float()


class SpecialistEnsemble(nn.Module):
    """Generalist + specialists as one classifier (forward: log q of :func:`combine`),
    evaluable by :func:`cnnlab.train.evaluate`."""

    def __init__(self, generalist: nn.Module, specialists, top_n: int = 1, steps: int = 100):
        super().__init__()
        self.generalist = generalist
        self.specialists = nn.ModuleList(specialists)
        self.top_n, self.steps = top_n, steps

    def forward(self, x):
        p_g = F.softmax(main_output(self.generalist(x)).float(), 1)
        parts = [(s.special_classes, F.softmax(main_output(s(x)).float(), 1),
                  getattr(s, "full_softmax", False)) for s in self.specialists]
        return combine(p_g, parts, self.top_n, self.steps).clamp_min(1e-30).log()


__all__ = ["FullSoftmaxLoss", "SpecialistEnsemble", "combine", "confusable_subsets",
           "enriched_split", "kmeans", "make_specialist", "prior_correction",
           "specialist_labels", "train_full_specialist", "train_specialist"]

"""Batches drawn from a dataset held as one tensor: an index_select per batch, then the
batch augmentation. The order of an epoch is a seeded permutation (a function of seed and
epoch only) and the augmentation draws from a generator whose state can be saved, so a run
resumed from a checkpoint sees exactly the batches an uninterrupted run would have seen.
With several processes each rank takes every world-th index of the permutation (padded to a
multiple of the world size, as ``DistributedSampler`` does)."""

from __future__ import annotations

import torch

from cnnlab.data.augment import BatchAugment, center_crop, pca_basis
from cnnlab.data.core import TensorData

_DEVICE_BYTES = 4 << 30  # datasets up to this size are moved to the accelerator whole


def _mix(*ints: int) -> int:
    h = 0x9E3779B97F4A7C15
    for v in ints:
        h = (h ^ (int(v) + 0x9E3779B97F4A7C15 + (h << 6) + (h >> 2))) & ((1 << 63) - 1)
    return h


class BatchLoader:
    def __init__(self, data: TensorData, batch_size: int, *, train: bool = False,
                 augment: str | dict | None = None, seed: int = 0, rank: int = 0, world: int = 1,
                 device: str | torch.device = "cpu", out_size: tuple[int, int] | None = None,
                 normalize: bool = True, drop_last: bool | None = None):
        if batch_size <= 0:
            raise ValueError(f"batch size must be positive, got {batch_size}")
        self.device = torch.device(device)
        nbytes = data.x.numel() * data.x.element_size()
        on_device = self.device.type == "cpu" or nbytes <= _DEVICE_BYTES
        self.data = data.to(self.device) if on_device else data
        self.src_device = self.data.x.device
        self.train, self.seed, self.rank, self.world = train, seed, rank, world
        self.out_size = tuple(out_size) if out_size else tuple(data.x.shape[-2:])
        self.normalize = normalize
        self.batch = batch_size // world if train else batch_size
        if train and batch_size % world:
            raise ValueError(f"batch size {batch_size} is not divisible by {world} processes")
        n = len(data)
        self.per_rank = -(-n // world)
        if not train:  # evaluation: contiguous shards, no padding (no image counted twice)
            self.per_rank = max(0, min(n, (rank + 1) * self.per_rank) - rank * self.per_rank)
        self.drop_last = (train and self.per_rank >= self.batch) if drop_last is None else drop_last
        pca = None
        if train and augment:
            aug = BatchAugment(augment, self.out_size)
            if aug.ops.get("pca"):
                pca = pca_basis(data.x)
        self.augment = BatchAugment(augment if train else None, self.out_size, pca)
        self.gen = torch.Generator(device=self.device)
        self._norm: tuple[torch.Tensor, torch.Tensor] | None = None

    def __len__(self) -> int:
        if self.drop_last:
            return self.per_rank // self.batch
        return -(-self.per_rank // self.batch)

    def indices(self, epoch: int) -> torch.Tensor:
        n = len(self.data)
        if self.train:
            idx = torch.randperm(n, generator=torch.Generator().manual_seed(
                _mix(self.seed, epoch)))
        else:
            idx = torch.arange(n)
        if self.world > 1 and self.train:
            total = -(-n // self.world) * self.world
            if total > n:
                idx = torch.cat([idx, idx[: total - n]])
            idx = idx[self.rank::self.world]
        elif self.world > 1:
            start = self.rank * (-(-n // self.world))
            idx = idx[start:start + self.per_rank]
        return idx

    def reset_rng(self, epoch: int) -> None:
        self.gen.manual_seed(_mix(self.seed, epoch, self.rank, 7))

    def epoch(self, epoch: int, start: int = 0, rng_state: torch.Tensor | None = None):
        """Yield ``(x, y)`` batches of ``epoch`` from batch ``start`` (x: float32, normalised,
        augmented; on the loader's device). ``rng_state`` resumes the augmentation generator
        where a checkpoint left it; otherwise it is seeded from (seed, epoch, rank)."""
        idx = self.indices(epoch).to(self.src_device)
        if rng_state is not None:
            self.gen.set_state(rng_state)
        else:
            self.reset_rng(epoch)
        for b in range(start, len(self)):
            sel = idx[b * self.batch:(b + 1) * self.batch]
            x = self.data.x.index_select(0, sel).to(self.device, non_blocking=True)
            y = self.data.y.index_select(0, sel).to(self.device, non_blocking=True)
            yield self.prepare(x, y)

    def prepare(self, x: torch.Tensor, y: torch.Tensor | None = None):
        """A raw batch → float32, augmented (training) or centre-cropped (evaluation),
        normalised. Dense targets (N×H×W, the images' size) are cropped and flipped with
        them. Returns ``(x, y)`` (``x`` alone when ``y`` is None)."""
        x = x.float().div_(255) if x.dtype == torch.uint8 else x.float()
        dense = y is not None and y.dim() == 3 and y.shape[-2:] == x.shape[-2:]
        if self.augment:
            if dense:
                x, y = self.augment.pre(x, self.gen, y)
            else:
                x = self.augment.pre(x, self.gen)
        elif tuple(x.shape[-2:]) != self.out_size:
            x = center_crop(x, self.out_size)
            y = center_crop(y, self.out_size) if dense else y
        if self.normalize and self.data.mean is not None:
            if self._norm is None or self._norm[0].device != x.device:
                self._norm = (torch.tensor(self.data.mean, device=x.device).view(1, -1, 1, 1),
                              torch.tensor(self.data.std, device=x.device).view(1, -1, 1, 1))
            x = (x - self._norm[0]) / self._norm[1]
        if self.augment:
            x = self.augment.post(x, self.gen)
        x = x.contiguous()
        return x if y is None else (x, y)

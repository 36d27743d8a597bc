"""Channel shuffle (ShuffleNet, Zhang et al. 2018, Sec. 3.1) and channel split (ShuffleNet V2,
Ma et al. 2018, Sec. 3)."""

from __future__ import annotations

import torch
import torch.nn as nn

from cnnlab.layers.trace import is_symbolic


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Reshape the C channels to (groups, C / groups), transpose, flatten (Fig. 1c).

    Channel ``i·n + j`` (group ``i`` of ``n = C / groups``) moves to ``j·groups + i``, so each
    group of the next grouped convolution sees one channel from every group before it. The
    inverse is ``channel_shuffle(·, C // groups)``.
    """
    if not is_symbolic(x) and (groups < 1 or x.shape[1] % groups):
        raise ValueError(f"channel_shuffle: {x.shape[1]} channels do not split into {groups} "
                         "groups")
    # reshape/transpose/narrow rather than unflatten/slicing: torch.ao's int8 graph passes
    # these through in int8, where the others would be dequantized around every unit
    n = x.shape[1] // groups
    return x.reshape(x.shape[0], groups, n, -1).transpose(1, 2).reshape(x.shape)


def channel_split(x: torch.Tensor, first: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Split the channels into ``first`` and ``C - first`` (``c' = c / 2`` by default)."""
    c = x.shape[1]
    first = c // 2 if first is None else first
    if not is_symbolic(x) and not 0 < first < c:
        raise ValueError(f"channel_split: cannot split {c} channels at {first}")
    return torch.narrow(x, 1, 0, first), torch.narrow(x, 1, first, c - first)


class ChannelShuffle(nn.Module):
    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channel_shuffle(x, self.groups)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"

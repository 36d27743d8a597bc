"""ENAS's two convolutional search spaces (Pham et al. 2018, Sec. 2.3-2.4) as counts,
uniform samplers and decoders from a flat list of decisions to a config that
:func:`cnnlab.models.enas.build_from_config` builds.

Decisions, in the order the controller makes them:

* macro, per layer i: the operation (6 choices), then one bit per earlier layer j < i
  (skip input or not);
* micro, per cell type (normal, then reduction), per block k = 0..B−3 (states 0..k+1
  exist before it): input a, input b, operation on a, operation on b (NASNet's steps 1-4;
  ENAS always adds, so step 5 is fixed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from cnnlab.models.enas import MACRO_OPS, MICRO_OPS


def macro_space_size(num_layers: int) -> int:
    """6^L · 2^{L(L−1)/2} (Sec. 2.3: 1.6 × 10²⁹ at L = 12)."""
    return len(MACRO_OPS) ** num_layers * 2 ** (num_layers * (num_layers - 1) // 2)


def micro_space_size(num_nodes: int) -> int:
    """The paper's count, (5 · (B−2)!)⁴ for a normal and a reduction cell of B nodes
    (Sec. 2.4: 1.3 × 10¹¹ at B = 7). The controller's decision sequences are more,
    :func:`micro_decision_count`: the formula counts one input choice per block."""
    return (len(MICRO_OPS) * math.factorial(num_nodes - 2)) ** 4


def micro_decision_count(num_nodes: int) -> int:
    """Distinct decision sequences for both cells: block k picks 2 of k+2 states and 2 of 5
    operations, (∏_{k=2}^{B−1} 25·k²)²."""
    per_cell = math.prod(len(MICRO_OPS) ** 2 * k * k for k in range(2, num_nodes))
    return per_cell ** 2


@dataclass(frozen=True)
class MacroSpace:
    """L layers, 6 operations, any subset of earlier layers as skips; ``filters`` is the
    supernet's (and by default the derived network's) channel count."""

    num_layers: int = 12
    filters: int = 36
    kind: str = "macro"

    def __post_init__(self):
        if not isinstance(self.num_layers, int) or self.num_layers < 1:
            raise ValueError(f"num_layers must be a positive int, got {self.num_layers!r}")

    def size(self) -> int:
        return macro_space_size(self.num_layers)

    def num_decisions(self) -> int:
        return self.num_layers + self.num_layers * (self.num_layers - 1) // 2

    def sample_uniform(self, gen: torch.Generator) -> list[int]:
        out = []
        for i in range(self.num_layers):
            out.append(int(torch.randint(len(MACRO_OPS), (1,), generator=gen)))
            out += torch.randint(2, (i,), generator=gen).tolist()
        return out

    def decode(self, d: list[int]) -> dict:
        ops, skips, pos = [], [], 0
        for i in range(self.num_layers):
            ops.append(MACRO_OPS[d[pos]])
            skips.append([int(b) for b in d[pos + 1:pos + 1 + i]])
            pos += 1 + i
        return {"space": "macro", "ops": ops, "skips": skips, "filters": self.filters}


@dataclass(frozen=True)
class MicroSpace:
    """Cells of B = ``num_nodes`` nodes (two inputs, B−2 blocks); the network stacks
    ``num_layers`` normal cells and two reduction cells with ``filters`` F."""

    num_nodes: int = 7
    num_layers: int = 6
    filters: int = 20
    kind: str = "micro"

    def __post_init__(self):
        if not isinstance(self.num_nodes, int) or self.num_nodes < 3:
            raise ValueError(f"num_nodes must be an int >= 3, got {self.num_nodes!r}")

    @property
    def num_blocks(self) -> int:
        return self.num_nodes - 2

    def size(self) -> int:
        return micro_space_size(self.num_nodes)

    def num_decisions(self) -> int:
        return 2 * 4 * self.num_blocks

    def sample_uniform(self, gen: torch.Generator) -> list[int]:
        out = []
        for _cell in range(2):
            for k in range(self.num_blocks):
                out += torch.randint(k + 2, (2,), generator=gen).tolist()
                out += torch.randint(len(MICRO_OPS), (2,), generator=gen).tolist()
        return out

    def cells(self, d: list[int]) -> tuple[list[tuple], list[tuple]]:
        cells = []
        for c in range(2):
            blocks = []
            for k in range(self.num_blocks):
                a, b, op_a, op_b = d[(c * self.num_blocks + k) * 4:][:4]
                blocks.append((a, MICRO_OPS[op_a], b, MICRO_OPS[op_b]))
            cells.append(blocks)
        return cells[0], cells[1]

    def decode(self, d: list[int]) -> dict:
        normal, reduction = self.cells(d)
        return {"space": "micro", "num_layers": self.num_layers, "filters": self.filters,
                "normal": {"nodes": [list(n) for n in normal]},
                "reduction": {"nodes": [list(n) for n in reduction]}}


def make_space(kind: str, **kwargs) -> MacroSpace | MicroSpace:
    if kind == "macro":
        return MacroSpace(**kwargs)
    if kind == "micro":
        return MicroSpace(**kwargs)
    raise ValueError(f"unknown search space {kind!r}; choose macro or micro")

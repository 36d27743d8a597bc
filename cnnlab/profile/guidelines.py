"""ShuffleNet V2's four practical guidelines (Ma et al. 2018, Sec. 2; deck 004:603-633) as
formulas and as a checker over a :class:`~cnnlab.profile.Profile`'s layers.

MAC (memory access cost) is the profiler's ``memory_access``: input + output activations +
weights, in elements. For a 1×1 convolution with c1 → c2 channels on an h×w map,
B = hw·c1·c2 mult-adds and MAC = hw(c1 + c2) + c1·c2.
"""

from __future__ import annotations

import math
from collections import defaultdict

# how far from a guideline's optimum a layer may be before it is flagged
G1_RATIO = 2.0        # c_out / c_in (or its inverse) of a 1×1 convolution
G3_FRAGMENTS = 4      # convolutions in one block
G4_SHARE = 0.2        # element-wise ops' share of the model's memory access


def g1_bound(h: int, w: int, flops: float) -> float:
    """G1 (Eq. 1): at fixed B, MAC ≥ 2·√(hw·B) + B/hw, with equality when c1 = c2."""
    return 2 * math.sqrt(h * w * flops) + flops / (h * w)


def g2_mac(h: int, w: int, c1: int, groups: int, flops: float) -> float:
    """G2 (Eq. 2): a 1×1 group convolution at fixed B = hw·c1·c2/g reads and writes
    MAC = hw·c1 + B·g/c1 + B/hw, which grows with the number of groups g."""
    return h * w * c1 + flops * groups / c1 + flops / (h * w)


def _conv_shape(row):
    n, c1, *_ = row.input_shape
    _, c2, h, w = row.output_shape
    return n, c1, c2, h, w


CONTAINERS = {"Sequential", "ModuleList", "ModuleDict"}


def block_of(prof, name: str) -> str:
    """The outermost module around ``name`` that is not a plain container: a network's
    block (a ShuffleNet unit, an Inception module, a residual block)."""
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        prefix = ".".join(parts[:i])
        cls = prof.module_io.get(prefix, ("Sequential",))[0]
        if cls not in CONTAINERS:
            return prefix
    return name


def check(prof) -> list[dict]:
    """Flags ``{"layer", "guideline", "message"}`` for the layers of ``prof`` that go against
    G1 (unequal 1×1 widths), G2 (group convolutions other than depthwise), G3 (more than
    four convolutions in one block, see :func:`block_of`) and G4 (element-wise ops' share
    of the memory access, for the model)."""
    flags = []
    per_block = defaultdict(int)
    for r in prof.rows:
        if not r.op.startswith("conv") or len(r.output_shape) != 4:
            continue
        n, c1, c2, h, w = _conv_shape(r)
        per_block[block_of(prof, r.name)] += 1
        if r.kind == "conv 1x1":
            ratio = max(c1, c2) / min(c1, c2)
            if ratio >= G1_RATIO:
                excess = (r.memory_access / n) / g1_bound(h, w, r.macs / n) - 1
                flags.append({"layer": r.name, "guideline": "G1", "message":
                              f"1x1 conv {c1}->{c2} channels: MAC {100 * excess:.0f} % above "
                              "the equal-width bound"})
        elif r.kind.endswith("grouped"):
            flags.append({"layer": r.name, "guideline": "G2", "message":
                          f"group convolution ({r.kind}, {c1}->{c2}): more groups, more MAC "
                          "at the same mult-adds"})
    for block, count in per_block.items():
        if count > G3_FRAGMENTS and block:
            flags.append({"layer": block, "guideline": "G3", "message":
                          f"{count} convolutions in one block: fragmentation lowers "
                          "parallelism"})
    elementwise = sum(r.memory_access for r in prof.rows
                      if r.kind in ("activation", "elementwise"))
    share = elementwise / max(prof.memory_access, 1)
    if share > G4_SHARE:
        flags.append({"layer": "", "guideline": "G4", "message":
                      f"element-wise ops (ReLU, add, ...) move {100 * share:.0f} % of the "
                      "model's memory access"})
    return flags

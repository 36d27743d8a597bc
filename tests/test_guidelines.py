"""ShuffleNet V2's guidelines in the profiler's own formulas, the checker behind
``cnnlab summary --guidelines``, and MobileNetV2's memory model with its |op| term."""

from __future__ import annotations

import json

import pytest
from torch import nn

from cnnlab.cli import main
from cnnlab.profile import profile
from cnnlab.profile.guidelines import check, g1_bound, g2_mac


def _mac_1x1(c1, c2, side, groups=1):
    p = profile(nn.Conv2d(c1, c2, 1, groups=groups, bias=False), (c1, side, side))
    return p.memory_access, p.macs


def test_g1_equal_widths_meet_the_bound_and_others_exceed_it():
    """Eq. 1: MAC ≥ 2√(hwB) + B/hw, equality at c1 = c2 (the profiler's MAC)."""
    side, flops = 8, 64 * 64 * 64
    mac, b = _mac_1x1(64, 64, side)
    assert b == flops and mac == g1_bound(side, side, flops) == 12_288
    for c1 in (16, 32, 128, 256):
        mac, b = _mac_1x1(c1, 4096 // c1, side)
        assert b == flops and mac > g1_bound(side, side, flops)


def test_g2_mac_grows_with_groups_at_fixed_flops():
    """Eq. 2: B fixed (c2 = g·c fixed per group), MAC = hw·c1 + Bg/c1 + B/hw rises with g."""
    side, c1 = 8, 64
    macs = []
    for g in (1, 2, 4, 8):
        mac, b = _mac_1x1(c1, 32 * g, side, groups=g)
        assert b == 64 * c1 * 32 and mac == g2_mac(side, side, c1, g, b)
        macs.append(mac)
    assert macs == sorted(macs) and len(set(macs)) == 4


class _Frag(nn.Module):
    def __init__(self):
        super().__init__()
        self.branches = nn.ModuleList(nn.Conv2d(64, 64, 3, padding=1) for _ in range(5))

    def forward(self, x):
        return sum(b(x) for b in self.branches)


def test_checker_flags_each_guideline_where_it_applies():
    net = nn.Sequential(nn.Conv2d(8, 8, 1), nn.Conv2d(8, 64, 1), nn.Conv2d(64, 64, 1, groups=4),
                        _Frag(), nn.ReLU())
    flags = check(profile(net, (8, 8, 8)))
    by = {(f["guideline"], f["layer"]) for f in flags}
    assert ("G1", "1") in by and ("G1", "0") not in by
    assert ("G2", "2") in by
    assert ("G3", "3") in by
    assert {f["guideline"] for f in flags} <= {"G1", "G2", "G3", "G4"}
    quiet = check(profile(nn.Sequential(nn.Conv2d(8, 8, 3, padding=1)), (8, 8, 8)))
    assert quiet == []


def test_g4_flags_a_model_dominated_by_elementwise_ops():
    net = nn.Sequential(nn.Conv2d(4, 4, 1), *[nn.ReLU() for _ in range(6)])
    assert [f["guideline"] for f in check(profile(net, (4, 8, 8)))] == ["G4"]


def test_summary_guidelines_option(capsys):
    assert main(["summary", "shufflenet_v1_g3", "--guidelines", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    kinds = {f["guideline"] for f in out["guidelines"]}
    assert "G2" in kinds  # pointwise group convolutions
    assert main(["summary", "lenet5", "--guidelines"]) == 0
    assert "ShuffleNet V2 guidelines" in capsys.readouterr().out


class _Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.expand = nn.Conv2d(2, 12, 1)
        self.project = nn.Conv2d(12, 2, 1)

    def forward(self, x):
        return x + self.project(self.expand(x))


def test_peak_memory_adds_the_ops_own_storage():
    """M(G) = max over ops of Σ|inputs| + Σ|outputs| + |op| (MobileNetV2 Sec. 5.1)."""
    p = profile(nn.Sequential(_Block()), (2, 4, 4))
    expand_w, project_w = 2 * 12 + 12, 12 * 2 + 2
    assert p.peak_memory() == (2 * 16 + 12 * 16 + expand_w) * 4
    # the block as one op: its input, its output and all of its weights
    assert p.peak_memory(as_op=(_Block,)) == (2 * 16 + 2 * 16 + expand_w + project_w) * 4
    assert p.peak_activation(as_op=(_Block,)) == (2 * 16 + 2 * 16) * 4
    assert p.to_dict(rows=False)["peak_memory_bytes"] == p.peak_memory()


@pytest.mark.parametrize("blocks", [False, True])
def test_mobilenet_v2_needs_less_memory_than_v1_table_3(blocks):
    from cnnlab.layers import InvertedResidual

    v2 = profile("mobilenet_v2")
    v1 = profile("mobilenet_v1")
    as_op = (InvertedResidual,) if blocks else ()
    assert v2.peak_memory(as_op) >= v2.peak_activation(as_op)
    if blocks:
        assert v2.peak_memory(as_op) < v1.peak_memory()

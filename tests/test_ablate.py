"""``cnnlab ablate``: every registered ablation runs end to end at a tiny budget, the verdict
follows the seeds' spread, and the decks' worked cost examples are pinned."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from cnnlab.ablate import (
    Ablation,
    Claim,
    Task,
    Variant,
    get_ablation,
    list_ablations,
    run_ablation,
    verdicts,
)
from cnnlab.ablate.core import _steps_to_target
from cnnlab.cli import main
from cnnlab.profile import profile
from cnnlab.profile.formulas import depthwise_separable_macs, separable_ratio

TINY = dict(iters=1, val_split=40, train_images=32, batch_size=16, latency_runs=2)


@pytest.mark.parametrize("name", list_ablations())
def test_every_ablation_runs_end_to_end(name):
    torch.set_num_threads(1)
    a = get_ablation(name)
    r = run_ablation(a, seeds=1, **TINY)
    assert [v["variant"] for v in r["variants"]] == [v.name for v in a.variants]
    for row in r["variants"]:
        assert row["params"] > 0 and row["macs"] > 0 and row["latency_ms"] > 0
        assert 0 <= row["acc_mean"] <= 1 and row["runs"][0]["steps"] == 1
        assert row["paper"]
    assert len(r["verdicts"]) == len(a.claims) and a.claims
    assert all(v["verdict"].startswith("inconclusive") for v in r["verdicts"])  # one seed
    json.dumps(r)  # JSON-ready (files are written by the CLI test)


def _rows(better, worse):
    def row(name, accs):
        m = sum(accs) / len(accs)
        sd = (sum((x - m) ** 2 for x in accs) / (len(accs) - 1)) ** 0.5
        return {"variant": name, "runs": [{}] * len(accs), "acc_mean": m, "acc_std": sd}
    return [row("a", better), row("b", worse)]


def test_verdict_follows_the_spread_of_the_seeds():
    a = Ablation("x", "x", "x", (), Task(), (Claim("a", "b"),))
    assert verdicts(a, _rows([0.90, 0.91, 0.92], [0.80, 0.81, 0.82]), False)[0]["verdict"] \
        == "reproduces"
    assert verdicts(a, _rows([0.80, 0.81, 0.82], [0.90, 0.91, 0.92]), False)[0]["verdict"] \
        == "does not reproduce"
    assert verdicts(a, _rows([0.80, 0.90, 0.85], [0.84, 0.86, 0.85]), False)[0]["verdict"] \
        == "inconclusive"
    stuck = _rows([0.90, 0.91, 0.92], [0.10, 0.11, 0.09])
    stuck[1]["at_chance"] = True
    assert verdicts(a, stuck, False)[0]["verdict"].startswith("invalid (b stayed near chance")


def test_steps_to_target_is_the_first_evaluation_under_the_error():
    hist = [{"step": 10, "val_top1": 50.0}, {"step": 20}, {"step": 30, "val_top1": 91.0},
            {"step": 40, "val_top1": 95.0}]
    assert _steps_to_target(hist, 0.10) == 30
    assert _steps_to_target(hist, 0.01) is None


def test_a_run_can_never_reach_the_target_and_says_so():
    a = get_ablation("relu_tanh")
    r = run_ablation(a, seeds=1, **{**TINY, "target_error": 0.0})
    assert all(v["reached"] == 0 and v["steps_mean"] == 1 for v in r["variants"])


def test_cli_writes_json_and_png_and_lists(tmp_path, capsys):
    out = tmp_path / "res"
    assert main(["ablate", "gap_fc", "--seeds", "2", "--iters", "1", "--out", str(out),
                 "--json"]) == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert r["seeds"] == 2 and len(r["variants"][0]["runs"]) == 2
    assert json.loads((out / "gap_fc.json").read_text())["ablation"] == "gap_fc"
    assert (out / "gap_fc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["ablate", "--list"]) == 0
    listed = capsys.readouterr().out
    assert all(n in listed for n in list_ablations())


def test_retime_rewrites_the_latency_column_and_nothing_else(tmp_path):
    import importlib.util

    out = tmp_path / "res"
    assert main(["ablate", "gap_fc", "--seeds", "1", "--iters", "1", "--out", str(out)]) == 0
    path = out / "gap_fc.json"
    before = json.loads(path.read_text())
    script = Path(__file__).parents[1] / "experiments" / "ablations.py"
    spec = importlib.util.spec_from_file_location("ablations_script", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.retime(path, runs=2)
    after = json.loads(path.read_text())
    assert "in turns" in after.pop("latency")
    lat = [v.pop("latency_ms") for v in after["variants"]]
    assert all(t > 0 for t in lat) and len(lat) == 2
    for v in before["variants"]:
        v.pop("latency_ms")
    assert after == before


def test_budget_cuts_the_steps_for_all_variants_alike():
    from cnnlab.ablate import plan_iters

    a = Ablation("x", "x", "x", (Variant("v", lambda c, n: nn.Sequential(
        nn.Flatten(), nn.Linear(c * 16 * 16, n))),), Task(iters=10**9))
    few = plan_iters(a, 3, 1e-4, 10, 1)
    assert 1 <= few < plan_iters(a, 3, 1e-2, 10, 1) < 10**9
    assert plan_iters(a, 3, None, 10, 1) == 10**9


# --- the decks' worked examples -------------------------------------------------------------
def test_naive_vs_dimension_reduced_inception_cost_deck_002_426():
    """5×5 conv 192 → 32 on 28×28: 153,600 parameters and 120,422,400 mult-adds; with a 1×1
    reduction to 16 first: 15,872 parameters and 12,443,648 (GoogLeNet, deck 002:426-442)."""
    naive = profile(nn.Conv2d(192, 32, 5, padding=2, bias=False), (192, 28, 28))
    reduced = profile(nn.Sequential(nn.Conv2d(192, 16, 1, bias=False),
                                    nn.Conv2d(16, 32, 5, padding=2, bias=False)), (192, 28, 28))
    assert (naive.params, naive.macs) == (153_600, 120_422_400)
    assert (reduced.params, reduced.macs) == (15_872, 12_443_648)


def test_mobilenet_192_to_32_worked_example_deck_002_899():
    """Depthwise 5×5 on 192 channels at 28×28 + pointwise 192 → 32: 3,763,200 + 4,816,896 =
    8,580,096 mult-adds, 4,800 + 6,144 = 10,944 parameters, 7.12 % of the full conv's
    (1/32 + 1/25; deck 002:899-913)."""
    dws = profile(nn.Sequential(nn.Conv2d(192, 192, 5, padding=2, groups=192, bias=False),
                                nn.Conv2d(192, 32, 1, bias=False)), (192, 28, 28))
    assert [r.macs for r in dws.rows if r.macs] == [3_763_200, 4_816_896]
    assert dws.macs == 8_580_096 == depthwise_separable_macs(5, 192, 32, 28)
    assert dws.params == 10_944
    assert round(100 * dws.params / 153_600, 2) == 7.12
    assert abs(100 * separable_ratio(5, 32) - 7.12) < 0.01  # 7.125, printed 7.12


# --- the switches the ablations turn --------------------------------------------------------
def test_segment_spectrum_runs_from_regular_conv_to_depthwise():
    """Xception Sec. 2: 1 segment = a regular 3×3 conv (+1×1), C segments = depthwise
    separable; in between, the spatial conv's cost falls as 1/segments."""
    from cnnlab.ablate.nets import SegmentedSeparable

    c, n = 16, 32
    convs = {s: SegmentedSeparable(c, n, s).spatial.conv for s in (1, 4, c)}
    assert [m.weight.numel() for m in convs.values()] == [9 * c * c, 9 * c * c // 4, 9 * c]
    assert convs[c].groups == c
    mids = {a: [type(m).__name__ for m in SegmentedSeparable(c, n, c, a)] for a in
            ("none", "relu", "elu")}
    assert mids == {"none": ["ConvNormAct", "ConvNormAct"],
                    "relu": ["ConvNormAct", "ReLU", "ConvNormAct"],
                    "elu": ["ConvNormAct", "ELU", "ConvNormAct"]}
    with pytest.raises(ValueError):
        SegmentedSeparable(c, n, 5)


def test_ablation_switches_change_function_not_cost_where_the_paper_says():
    from cnnlab.ablate import nets

    x = torch.randn(2, 1, 32, 32)
    torch.manual_seed(0)
    a = nets.shuffle_net(1, 10, groups=3, shuffle=True).eval()
    torch.manual_seed(0)
    b = nets.shuffle_net(1, 10, groups=3, shuffle=False).eval()
    assert profile(a, (1, 32, 32)).macs == profile(b, (1, 32, 32)).macs
    assert not torch.allclose(a(x), b(x))
    relu6 = nets.mbv2_net(1, 10, linear=False)
    linear = nets.mbv2_net(1, 10, linear=True)
    assert all(hasattr(blk.project, "act") for blk in relu6[1:6])
    assert not any(hasattr(blk.project, "act") for blk in linear[1:6])
    bypass = [m.bypass_kind for m in nets.squeeze_net(1, 10, "complex").modules()
              if type(m).__name__ == "Fire"]
    assert bypass == ["complex", "simple", "complex", "simple"]

"""``cnnlab search compound`` end to end (Tan & Le 2019, Sec. 3.3 step 1 and step 2) on a
tiny B0-shaped baseline and a few digits."""

import json
import math

import torch

from cnnlab.cli import main

torch.set_num_threads(1)

TINY = ["search", "compound", "--width", "0.25", "--depth", "0.25", "--resolution", "8",
        "--alphas", "2", "--betas", "1", "--val-split", "50", "--train-images", "32",
        "--grid-epochs", "1", "--epochs", "1", "--batch-size", "32", "--seeds", "2",
        "--seed", "3"]


def test_search_compound_writes_both_steps_and_refuses_its_own_out(tmp_path, capsys):
    out = tmp_path / "c"
    assert main([*TINY, "--objective", "reward", "--out", str(out), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]  # no temp folder left
    assert sorted(p.name for p in out.iterdir()) == ["compound.json", "compound.md",
                                                     "compound.png"]
    res = json.loads((out / "compound.json").read_text())
    assert shown["out"] == str(out) and shown["verdict"] == res["verdict"]
    assert res["config"]["seeds"] == [3, 4]
    (c,) = res["step1"]  # α = 2, β = 1 leaves γ = 1
    assert c["alpha"] * c["beta"] ** 2 * c["gamma"] ** 2 == 2
    assert c["score"] == c["reward"]  # the reward objective scores by ACC·(MACs/T)^w
    assert math.isclose(c["reward"], c["mean"] * (c["macs"] / res["budget_macs"]) ** -0.07,
                        abs_tol=2e-3)
    rows = {r["name"].split(" (")[0]: r for r in res["step2"]}
    assert set(rows) == {"baseline", "compound phi=1.5", "depth only", "width only",
                         "resolution only"}
    assert len(res["step2"]) == 6  # the winner's and the paper's compound networks
    winner = res["step2"][1]
    for dim in ("depth", "width", "resolution"):  # matched to at most the winner's cost
        assert rows[f"{dim} only"]["macs"] <= winner["macs"]
        assert rows[f"{dim} only"][dim[0]] > 1
    for r in res["step2"]:
        assert len(r["accuracies"]) == 2
        assert math.isclose(r["mean"], sum(r["accuracies"]) / 2, abs_tol=1e-3)
    assert "| resolution only |" in (out / "compound.md").read_text()
    assert (out / "compound.png").read_bytes()[:4] == b"\x89PNG"
    assert main([*TINY, "--out", str(out)]) == 2
    assert "not an empty directory" in capsys.readouterr().err


def test_configs_that_build_the_same_layers_are_one_run():
    from cnnlab.search.compound_run import CompoundConfig, Trainer

    cfg = CompoundConfig(width=0.25, depth=0.25, resolution=8)
    base = cfg.baseline()
    # B0's repeats 1,2,2,3,3,4,1 × 0.25·1.9 and × 0.25·2.0 round up alike; × 0.25·2.2 do not
    same, also, other = (base.config(d=d) for d in (1.9, 2.0, 2.2))
    assert same != also and base.macs(same) == base.macs(also) < base.macs(other)
    trainer = Trainer(cfg, base)
    assert trainer.pending([same, also, other], seeds=(0, 1), epochs=1) == 4
    assert trainer.pending([same], seeds=(0,), epochs=2) == 1

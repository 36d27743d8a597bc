"""ENAS search spaces, weight sharing, the controller's REINFORCE update and a whole tiny
search with resume (Pham et al. 2018)."""

import json

import pytest
import torch

import cnnlab
from cnnlab.data import DataSplit, TensorData
from cnnlab.profile import profile
from cnnlab.search.controller import Controller, Reinforce
from cnnlab.search.enas import SearchConfig, read_log, search
from cnnlab.search.spaces import (
    MacroSpace,
    MicroSpace,
    macro_space_size,
    micro_decision_count,
    micro_space_size,
)
from cnnlab.search.supernet import make_supernet

torch.set_num_threads(1)


def test_space_sizes_are_the_papers():
    assert f"{macro_space_size(12):.1e}" == "1.6e+29"   # Sec. 2.3
    assert f"{micro_space_size(7):.1e}" == "1.3e+11"    # Sec. 2.4
    assert macro_space_size(3) == 6 ** 3 * 2 ** 3
    assert MacroSpace(num_layers=12).size() == macro_space_size(12)
    # B = 4: block 0 picks 2 of 2 states, block 1 2 of 3, each with 2 of 5 operations
    assert micro_decision_count(4) == ((2 * 2 * 25) * (3 * 3 * 25)) ** 2


def _tiny(kind):
    return MacroSpace(num_layers=4, filters=4) if kind == "macro" else \
        MicroSpace(num_nodes=4, num_layers=1, filters=4)


@pytest.mark.parametrize("kind", ["macro", "micro"])
def test_every_sampled_architecture_builds_and_runs(kind):
    space = _tiny(kind)
    supernet = make_supernet(space, 10, 1)
    controller = Controller(space)
    x = torch.randn(2, 1, 8, 8)
    for seed in range(6):
        g = torch.Generator().manual_seed(seed)
        for d in (space.sample_uniform(g), controller.sample(g).decisions):
            assert len(d) == space.num_decisions()
            cfg = space.decode(d)
            net = cnnlab.create_model("enas", config=cfg, in_chans=1)
            assert net(x).shape == (2, 10)
            assert supernet(x, cfg).shape == (2, 10)


@pytest.mark.parametrize("kind", ["macro", "micro"])
def test_shared_weights_are_the_same_tensors_used_only_when_sampled(kind):
    space = _tiny(kind)
    supernet = make_supernet(space, 10, 1)
    params = dict(supernet.named_parameters())
    x, y = torch.randn(4, 1, 8, 8), torch.randint(0, 10, (4,))
    used = []
    for seed in (0, 1):
        d = space.sample_uniform(torch.Generator().manual_seed(seed))
        supernet.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(supernet(x, space.decode(d)), y).backward()
        used.append({n for n, p in supernet.named_parameters() if p.grad is not None})
    # the forward passes created nothing: the same Parameter objects before and after
    assert all(p is params[n] for n, p in supernet.named_parameters())
    assert used[0] & used[1]  # the stem and head serve both children
    assert used[0] != used[1]
    assert len(used[0]) < len(params)  # the rest got no gradient: not used


def test_reinforce_moves_probability_toward_rewarded_choice():
    space = MacroSpace(num_layers=2, filters=4)
    torch.manual_seed(0)
    ctrl = Controller(space)
    d = ctrl.sample(torch.Generator().manual_seed(0)).decisions
    for reward, sign in ((1.0, 1), (0.0, -1)):
        rl = Reinforce(ctrl, lr=0.01, entropy_weight=0.0)
        rl.baseline = 0.5  # so the advantage is +0.5 or -0.5 (less the baseline's move)
        with torch.no_grad():
            before = float(ctrl.sample(decisions=d).log_prob)
        rl.step(ctrl.sample(decisions=d), reward)
        with torch.no_grad():
            after = float(ctrl.sample(decisions=d).log_prob)
        assert sign * (after - before) > 0


@pytest.fixture(scope="module")
def small_digits():
    """240 + 64 images of a learnable toy task: class k has a bright row k."""
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 8, (304,), generator=g)
    x = torch.randint(0, 80, (304, 1, 8, 8), generator=g, dtype=torch.uint8)
    x[torch.arange(304), 0, y] = 255
    return DataSplit(TensorData(x[:240], y[:240]), TensorData(x[240:], y[240:]), 8, 1, "toy")


def _cfg(tmp, **kw):
    base = dict(space="micro", num_nodes=4, num_layers=1, filters=4, epochs=2,
                batch_size=32, controller_steps=2, derive_samples=2, search_val=64,
                out_dir=str(tmp))
    return SearchConfig(**{**base, **kw})


def test_tiny_search_end_to_end_resumes_to_the_same_result(tmp_path, small_digits):
    a = search(small_digits, _cfg(tmp_path / "a"), progress=False)
    assert a.epochs == 2
    # "killed" after its first epoch: a budget that stops it there, then resume
    b0 = search(small_digits, _cfg(tmp_path / "b", budget_s=1e-9), progress=False)
    assert b0.epochs == 1
    # a kill -9 between the log's write and the checkpoint's leaves records the checkpoint
    # does not know: resume drops them
    with open(tmp_path / "b/search.jsonl", "a") as f:
        f.write(json.dumps({"phase": "theta", "epoch": 2, "accuracy": 0.5}) + "\n")
    b = search(small_digits, _cfg(tmp_path / "b", resume=True), progress=False)
    assert b.epochs == 2
    assert (tmp_path / "a/search.jsonl").read_text() == (tmp_path / "b/search.jsonl").read_text()
    fa = json.loads((tmp_path / "a/final.json").read_text())
    fb = json.loads((tmp_path / "b/final.json").read_text())
    assert fa["derived"]["decisions"] == fb["derived"]["decisions"]
    assert (tmp_path / "a/rewards.png").stat().st_size > 0
    phases = [r["phase"] for r in read_log(tmp_path / "a/search.jsonl")]
    assert phases.count("omega") == 2 and phases.count("theta") == 4
    # the derived network is a registered model: build, profile, train
    net = cnnlab.create_model("enas", config=str(tmp_path / "a/final.json"), in_chans=1)
    assert profile(net, (1, 8, 8)).macs > 0
    from cnnlab.train import TrainConfig, train
    res = train(net, small_digits, TrainConfig(epochs=1, batch_size=64, device="cpu"),
                progress=False)
    assert 0 <= res.metrics["top1"] <= 100


def test_random_search_uses_no_controller_steps(tmp_path, small_digits):
    r = search(small_digits, _cfg(tmp_path, random=True, epochs=1), progress=False)
    assert r.config["derived"]["method"] == "random"
    assert not [x for x in r.records if x["phase"] == "theta"]


def test_corrupt_log_on_resume_is_one_clear_error(tmp_path, small_digits):
    search(small_digits, _cfg(tmp_path, epochs=1), progress=False)
    log = tmp_path / "search.jsonl"
    lines = log.read_text().splitlines()
    log.write_text("{not json\n" + "\n".join(lines[1:]) + "\n")
    with pytest.raises(ValueError, match="line 1 is not a search record"):
        search(small_digits, _cfg(tmp_path, epochs=1, resume=True), progress=False)
    log.write_text("\n".join(lines[:2]) + "\n")  # cut short: fewer records than checkpointed
    with pytest.raises(ValueError, match=f"has 2 records, the checkpoint expects {len(lines)}"):
        search(small_digits, _cfg(tmp_path, epochs=1, resume=True), progress=False)


@pytest.mark.parametrize("kw,match", [
    (dict(space="nas"), "unknown search space"),
    (dict(budget_s=0), "budget must be positive"),
    (dict(epochs=0), "epochs must be a positive int"),
])
def test_bad_settings_are_refused(tmp_path, kw, match):
    with pytest.raises(ValueError, match=match):
        _cfg(tmp_path, **kw)


def test_paper_networks_are_registered():
    from cnnlab.profile import build_on_meta

    assert profile("enas_micro").params == 3_729_430
    macro = build_on_meta("enas_macro")
    assert len(macro.layers) == 24 and sum(map(sum, macro.skips)) > 0


def _search_worker(rank, world, port, out):
    import os

    from _gloo import as_rank

    as_rank(rank, world, port)
    import torch.distributed as dist
    from safetensors.torch import save_file

    from cnnlab.search import enas as enas_search

    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 8, (160,), generator=g)
    x = torch.randint(0, 80, (160, 1, 8, 8), generator=g, dtype=torch.uint8)
    x[torch.arange(160), 0, y] = 255
    split = DataSplit(TensorData(x, y), TensorData(x[:16], y[:16]), 8, 1, "toy")
    seen = []
    real = enas_search.make_supernet

    def spy(*a):
        net = real(*a)
        net.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[0]))
        return net
    enas_search.make_supernet = spy
    r = search(split, _cfg(out, epochs=1, controller_steps=1, derive_samples=1,
                           search_val=32), progress=False)
    state = {k: v.contiguous() for k, v in r.supernet.state_dict().items()
             if "running" not in k and "num_batches" not in k}
    save_file(state, os.path.join(out, f"rank{rank}.safetensors"),
              metadata={"first_batch": str(seen[0])})
    dist.destroy_process_group()


def test_omega_phase_on_two_gloo_ranks_keeps_weights_identical(tmp_path):
    from _gloo import spawn
    from safetensors import safe_open
    from safetensors.torch import load_file

    spawn(_search_worker, tmp_path)
    w0, w1 = (load_file(tmp_path / f"rank{r}.safetensors") for r in (0, 1))
    assert w0.keys() == w1.keys() and all(torch.equal(w0[k], w1[k]) for k in w0)
    # each rank trained on half of every 32-image batch
    meta = safe_open(tmp_path / "rank0.safetensors", "pt").metadata()
    assert meta["first_batch"] == "16"
    assert (tmp_path / "final.json").is_file()


def test_compound_grid_keeps_the_constraint():
    from cnnlab.search.compound_search import coefficient_grid

    grid = coefficient_grid()
    assert (1.2, 1.1, pytest.approx(1.1736, abs=1e-4)) in grid
    for a, b, g in grid:
        assert a * b * b * g * g == pytest.approx(2, rel=1e-3) and min(a, b, g) >= 1
    assert not [c for c in grid if c[0] == 2.0 and c[1] > 1]  # γ would be < 1


def test_compound_reward_and_budget_scores():
    from cnnlab.search.compound_search import Baseline, grid_search, reward

    assert reward(0.9, 100, 100) == pytest.approx(0.9)
    assert reward(0.9, 200, 100) == pytest.approx(0.9 * 2 ** -0.07)
    base = Baseline(width=0.25, depth=0.25, resolution=8)
    grid = [(1.0, 1.0, 2 ** 0.5), (2.0, 1.0, 1.0)]
    # a trainer whose accuracy grows with the input: the resolution candidate wins
    # unless its mult-adds break the budget
    ranked = grid_search(base, lambda cfg: float(cfg.resolution), grid)
    assert (ranked[0].alpha, ranked[0].gamma) == (1.0, 2 ** 0.5)
    budget = min(c.macs for c in ranked)
    assert max(c.macs for c in ranked) > budget
    tight = grid_search(base, lambda cfg: float(cfg.resolution), grid, budget=budget)
    assert tight[0].macs <= budget and tight[0].score == tight[0].accuracy
    assert tight[-1].macs > budget and tight[-1].score == 0.0


def test_one_dimension_matched_to_a_budget_stays_under_it():
    from cnnlab.search.compound_search import Baseline, match_macs

    base = Baseline(width=0.25, depth=0.25, resolution=8)
    target = 2 * base.macs(base.config())
    m, cfg, macs = match_macs(base, target, "width", steps=8)
    assert macs <= target < base.macs(base.config(w=m + 0.05))
    with pytest.raises(ValueError, match="unknown dimension"):
        match_macs(base, target, "height")


def test_cli_search_refuses_a_corrupt_log_and_an_occupied_dir(tmp_path, capsys):
    from cnnlab.cli import main

    sets = ["--set", "num_layers=1", "--set", "filters=4", "--set", "num_nodes=3",
            "--set", "controller_steps=1", "--set", "derive_samples=1", "--set",
            "search_val=64", "--set", "batch_size=64"]
    argv = ["search", "enas", "--epochs", "1", "--out", str(tmp_path), *sets]
    assert main(argv) == 0
    assert json.loads((tmp_path / "final.json").read_text())["space"] == "micro"
    capsys.readouterr()
    assert main(argv) == 2
    assert "already holds a search" in capsys.readouterr().err
    log = tmp_path / "search.jsonl"
    log.write_text("garbage\n" + "".join(log.read_text().splitlines(True)[1:]))
    assert main([*argv, "--resume"]) == 2
    err = capsys.readouterr().err
    assert "line 1 is not a search record" in err and len(err.strip().splitlines()) == 1

import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

import cnnlab
from cnnlab.data import DataSplit, TensorData
from cnnlab.train import TrainConfig, load_checkpoint, save_checkpoint, train
from cnnlab.train.checkpoint import read_meta
from cnnlab.train.optim import build_optimizer


def toy_split(n=192, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 10, (n,), generator=g)
    x = torch.randint(0, 100, (n, 1, 32, 32), generator=g, dtype=torch.uint8)
    x[torch.arange(n), 0, y * 3, 4:28] = 255  # a learnable bar per class
    val = TensorData(x[:64], y[:64])
    return DataSplit(TensorData(x[64:], y[64:]), val, num_classes=10, in_chans=1, name="toy")


def make(**kw):
    torch.manual_seed(0)
    return cnnlab.create_model("lenet5_modern", drop_rate=0.3, **kw)


CFG = dict(epochs=3, batch_size=32, lr=0.05, augment="crop:2,flip,cutout:4,scale:0.9-1.1",
           ema=0.9, save_every=3, schedule="cosine", warmup=1)


def weights(m):
    return [v.clone() for v in m.state_dict().values()]


def strip(history):
    return [{k: v for k, v in r.items() if k not in ("images_per_s", "seconds")}
            for r in history]


class Crash(Exception):
    pass


@pytest.mark.parametrize("crash_step", [5, 8, 10])
def test_resume_is_bit_exact(tmp_path, crash_step):
    split = toy_split()
    ref = make()
    r_ref = train(ref, split, TrainConfig(out_dir=str(tmp_path / "a"), **CFG), progress=False)

    def crash(m, step):
        if step == crash_step:
            raise Crash

    with pytest.raises(Crash):
        train(make(), split, TrainConfig(out_dir=str(tmp_path / "b"), **CFG),
              step_hooks=[crash], progress=False)
    meta = read_meta(tmp_path / "b" / "last.safetensors")
    assert 0 < meta["step"] < crash_step  # resumes from a mid-epoch or epoch-end checkpoint
    other = make()
    other.apply(lambda m: m.reset_parameters() if hasattr(m, "reset_parameters") else None)
    r = train(other, split, TrainConfig(out_dir=str(tmp_path / "b"), resume=True, **CFG),
              progress=False)
    assert all(torch.equal(a, b) for a, b in zip(weights(ref), weights(other)))
    assert strip(r.history) == strip(r_ref.history)
    lines = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3


KILL_SCRIPT = textwrap.dedent("""
    import sys, torch
    sys.path.insert(0, {tests!r})
    from test_checkpoint import toy_split, make, KILL_CFG
    from cnnlab.train import TrainConfig, train
    torch.set_num_threads(1)
    train(make(), toy_split(), TrainConfig(out_dir={out!r}, **KILL_CFG), progress=False)
""")
KILL_CFG = dict(CFG, epochs=10, save_every=1)


def test_kill_9_leaves_a_good_checkpoint_and_resume_matches(tmp_path):
    ckpt = tmp_path / "last.safetensors"
    script = KILL_SCRIPT.format(tests=os.path.dirname(__file__), out=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None and not ckpt.exists():
        time.sleep(0.005)
    time.sleep(0.1)  # mid-run: a checkpoint is written after every step
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    split = toy_split()
    resumed = make()
    meta = load_checkpoint(ckpt, resumed)  # intact: the previous or the new checkpoint
    assert 0 < meta["step"] < 10 * 4
    cfg = dict(KILL_CFG, save_every=0)
    r = train(resumed, split, TrainConfig(out_dir=str(tmp_path), resume=True, **cfg),
              progress=False)
    ref = make()
    r_ref = train(ref, split, TrainConfig(**cfg), progress=False)
    assert r.steps == r_ref.steps
    assert all(torch.equal(a, b) for a, b in zip(weights(ref), weights(resumed)))
    assert strip(r.history) == strip(r_ref.history)


def test_a_crash_while_writing_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    import cnnlab.train.checkpoint as ck

    model = make()
    path = tmp_path / "last.safetensors"
    save_checkpoint(path, model, meta={"epoch": 1})
    before = path.read_bytes()

    def dies(*a):
        raise OSError("disk gone")

    monkeypatch.setattr(ck.os, "replace", dies)
    with torch.no_grad():
        model.output.weight.add_(1)
    with pytest.raises(OSError):
        save_checkpoint(path, model, meta={"epoch": 2})
    assert path.read_bytes() == before and read_meta(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_roundtrip_and_no_pickle(tmp_path, monkeypatch):
    model = make()
    for name in ("sgd", "adamw", "rmsprop"):
        cfg = TrainConfig(optimizer=name, momentum=0.9)
        opt = build_optimizer(model, cfg)
        model(torch.randn(4, 1, 32, 32)).sum().backward()
        opt.step()
        rng = torch.get_rng_state()
        save_checkpoint(tmp_path / "c.safetensors", model, opt, {"epoch": 3, "note": name},
                        tensors={"rng": rng})
        assert (tmp_path / "c.json").is_file()

        def no_pickle(*a, **k):
            raise AssertionError("pickle used")

        with monkeypatch.context() as mp:
            for mod, attr in ((pickle, "load"), (pickle, "loads"), (torch, "load")):
                mp.setattr(mod, attr, no_pickle)
            m2 = cnnlab.create_model("lenet5_modern", drop_rate=0.3)
            o2 = build_optimizer(m2, cfg)
            meta = load_checkpoint(tmp_path / "c.safetensors", m2, o2)
        assert meta["epoch"] == 3 and meta["note"] == name
        assert torch.equal(meta["tensors"]["rng"], rng)
        assert all(torch.equal(a, b) for a, b in zip(weights(model), weights(m2)))
        s1, s2 = opt.state_dict(), o2.state_dict()
        for pid in s1["state"]:
            for k, v in s1["state"][pid].items():
                assert torch.equal(torch.as_tensor(v), torch.as_tensor(s2["state"][pid][k]))
        assert s1["param_groups"] == s2["param_groups"]


def test_foreign_truncated_and_mismatched_checkpoints(tmp_path):
    from safetensors.torch import save_file

    model = make()
    good = tmp_path / "good.safetensors"
    save_checkpoint(good, model, meta={"model": "lenet5_modern"})
    data = good.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[:-100])
    with pytest.raises(ValueError, match="truncated"):
        load_checkpoint(cut, make())
    cut.write_bytes(data[:20])
    with pytest.raises(ValueError, match="truncated|not a cnnlab"):
        load_checkpoint(cut, make())
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(3)}, str(foreign))
    with pytest.raises(ValueError, match="not a cnnlab checkpoint"):
        load_checkpoint(foreign, make())
    pk = tmp_path / "model.pt"
    torch.save(model.state_dict(), pk)
    with pytest.raises(ValueError, match="not a cnnlab checkpoint"):
        load_checkpoint(pk, make())
    with pytest.raises(ValueError, match="does not match this model.*(missing|shape)"):
        load_checkpoint(good, cnnlab.create_model("lenet5_modern", num_classes=7))
    with pytest.raises(ValueError, match="does not match"):
        load_checkpoint(good, cnnlab.create_model("lenet5"))
    with pytest.raises(ValueError, match="no optimizer state"):
        load_checkpoint(good, make(), build_optimizer(make(), TrainConfig()))
    with pytest.raises(ValueError, match="not found"):
        load_checkpoint(tmp_path / "none.safetensors", make())

"""Two CPU processes on gloo, set up as torchrun sets them up (RANK, WORLD_SIZE, MASTER_*):
DistributedDataParallel keeps both ranks' weights identical, and rank 0 alone writes."""

import os

import torch
from _gloo import as_rank, spawn


def _worker(rank, world, port, out):
    as_rank(rank, world, port)
    import torch.distributed as dist
    from safetensors.torch import save_file

    import cnnlab
    from cnnlab.data import DataSplit, TensorData
    from cnnlab.train import TrainConfig, train

    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (160,), generator=g)
    x = torch.randint(0, 60, (160, 1, 32, 32), generator=g, dtype=torch.uint8)
    x[torch.arange(160), 0, y * 3, 4:28] = 255
    split = DataSplit(TensorData(x[:128], y[:128]), TensorData(x[128:], y[128:]), 10, 1, "toy")
    torch.manual_seed(rank)  # different initial weights: DDP must broadcast rank 0's
    model = cnnlab.create_model("lenet5_modern", drop_rate=0.2)
    lines = []
    cfg = TrainConfig(epochs=2, batch_size=32, lr=0.05, augment="crop:2,flip", out_dir=out,
                      device="cpu")
    res = train(model, split, cfg, progress=False, log=lines.append)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              os.path.join(out, f"rank{rank}.safetensors"),
              metadata={"lines": str(len(lines)), "top1": str(res.metrics["top1"]),
                        "steps": str(res.steps)})
    dist.destroy_process_group()


def test_two_gloo_ranks_hold_identical_weights(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file

    spawn(_worker, tmp_path)
    w0 = load_file(tmp_path / "rank0.safetensors")
    w1 = load_file(tmp_path / "rank1.safetensors")
    assert w0.keys() == w1.keys()
    assert all(torch.equal(w0[k], w1[k]) for k in w0)
    meta = [safe_open(tmp_path / f"rank{r}.safetensors", "pt").metadata() for r in (0, 1)]
    # each rank took 16 images of every 32-image batch: 128 / 32 = 4 steps per epoch
    assert meta[0]["steps"] == meta[1]["steps"] == "8"
    assert meta[0]["top1"] == meta[1]["top1"]  # validation sums are all-reduced
    assert meta[0]["lines"] == "2" and meta[1]["lines"] == "0"  # rank 0 logs alone
    assert (tmp_path / "last.safetensors").is_file()
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 2

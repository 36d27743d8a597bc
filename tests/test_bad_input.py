"""Bad input, every subcommand: one line on stderr, exit code 2, no traceback, and nothing
left behind (no new file or folder, no run directory).

The table is the specification: add a row for every new command or option. Placeholders in
braces are filled from ``files`` (a trained LeNet-5 checkpoint, its .dcz, a read-only
folder, ...), built once per test run. Each case runs ``cnnlab.cli.main`` in-process from an
empty working directory, so a default ``runs/`` folder would be seen as left behind."""

from __future__ import annotations

import os
import stat

import pytest
import torch

from cnnlab.cli import main

# a device this machine does not have: "cuda" without CUDA, "cuda:N" beside N GPUs
NO_GPU = f"cuda:{torch.cuda.device_count()}" if torch.cuda.is_available() else "cuda"

MODELS = ["summary", "compare", "export", "train", "eval", "compress", "bench"]  # a model name
SIZED = ["summary", "compare", "export", "train", "eval", "bench"]               # --input-size

# (command line, needs) — `needs` names no fixture: every case gets them all
CASES: list[str] = [
    # -- nothing or nonsense at the top level
    "", "nosuchcommand", "--nosuchflag", "list --nosuchflag", "verify --nosuchflag",
    "recipes extra", "list a b",
    # -- list / verify
    "verify nosuchnet*", "list nosuchnet*",
    # -- summary
    "summary", "summary lenet5 --set num_classes=0.5", "summary lenet5 --set =3",
    "summary lenet5 --set nosuchkw=1", "summary lenet5 --set num_classes=-1",
    "summary mobilenet_v1 --set width_mult=1e9", "summary mobilenet_v1 --set width_mult=0",
    "summary mobilenet_v1 --set width_mult=-1", "summary lenet5 --batch-size -4",
    "summary lenet5 --batch-size 0", "summary lenet5 --depth -1", "summary lenet5 --set in_chans=0",
    "summary lenet5 --input-size 1x8x8", "summary lenet5 --input-size 3x32x32",
    # -- compare
    "compare", "compare lenet5 nosuchnet", "compare lenet5 alexnet --plot {ro}/z.png",
    "compare lenet5 alexnet --plot {file}/z.png", "compare lenet5 alexnet --plot {dir}",
    "compare lenet5 alexnet --plot {tmp}/nodir/z.png",
    # -- export
    "export lenet5", "export lenet5 -o {ro}/m.onnx", "export lenet5 -o {file}/m.onnx",
    "export lenet5 -o {dir}", "export lenet5 -o {tmp}/nodir/m.onnx",
    "export lenet5 -o {tmp}/m.onnx --opset 0", "export lenet5 -o {tmp}/m.onnx --opset 7",
    "export lenet5 -o {tmp}/m.onnx --opset 99", "export lenet5 -o {tmp}/m.onnx --opset -1",
    "export lenet5 -o {tmp}/m.onnx --checkpoint {missing}",
    "export lenet5 -o {tmp}/m.onnx --checkpoint {dir}",
    "export lenet5 -o {tmp}/m.onnx --checkpoint {garbage}",
    "export lenet5 -o {tmp}/m.onnx --checkpoint {empty}",
    "export alexnet -o {tmp}/m.onnx --checkpoint {ckpt}",
    "export lenet5 -o {tmp}/m.onnx --input-size 1x8x8",
    "export lenet5 -o {tmp}/m.onnx --checkpoint {ckpt} --input-size 3x32x32",
    # -- train: arguments
    "train", "train lenet5 --batch-size 0", "train lenet5 --batch-size -4",
    "train lenet5 --epochs 0", "train lenet5 --epochs -1", "train lenet5 --epochs nan",
    "train lenet5 --iters 0", "train lenet5 --iters -5", "train lenet5 --lr -1",
    "train lenet5 --lr 0", "train lenet5 --lr inf", "train lenet5 --lr nan",
    "train lenet5 --weight-decay -1", "train lenet5 --label-smoothing 1",
    "train lenet5 --label-smoothing -0.1", "train lenet5 --ema 1", "train lenet5 --ema -1",
    "train lenet5 --save-every -1", "train lenet5 --threads 0", "train lenet5 --threads -1",
    "train lenet5 --device bogus", "train lenet5 --device mps",
    f"train lenet5 --device {NO_GPU}", "train lenet5 --device cuda:7",
    "train lenet5 --optimizer bogus", "train lenet5 --schedule bogus", "train lenet5 --amp bogus",
    "train lenet5 --amp fp16 --device cpu",
    "train lenet5 --recipe bogus", "train lenet5 --opt warmup=abc", "train lenet5 --opt bogus=1",
    "train lenet5 --opt warmup", "train lenet5 --opt momentum=-1", "train lenet5 --opt lr=[1]",
    "train lenet5 --opt betas=abc", "train lenet5 --opt milestones=abc",
    "train lenet5 --opt eval_every=0", "train lenet5 --opt grad_clip=-1",
    "train lenet5 --augment bogus", "train lenet5 --augment crop:x",
    "train lenet5 --augment crop:-4",
    "train lenet5 --preprocess bogus", "train lenet5 --preprocess zca:0",
    "train lenet5 --preprocess zca:abc", "train lenet5 --preprocess mean-image:2",
    "train lenet5 --input-size 1x72x72 --preprocess zca",
    "train lenet5 --seed abc", "train lenet5 --set num_classes=3", "train lenet5 --set in_chans=3",
    "train lenet5 --set nosuchkw=1", "train lenet5 --set num_classes=0.5",
    "train lenet5 --input-size 1x8x8",
    "train lenet5 --input-size 3x32x32", "train lenet5 --input-size 1x32x32x32x32",
    # -- train: data
    "train lenet5 --data bogus", "train lenet5 --data mnist:{missing}",
    "train lenet5 --data mnist:{empty_dir}", "train lenet5 --data folder:{missing}",
    "train lenet5 --data folder:{empty_dir}", "train lenet5 --data cifar10:{empty_dir}",
    "train lenet5 --data folder:{folder2}", "train lenet5 --data digits --val-split -1",
    "train lenet5 --data digits --val-split 0", "train lenet5 --data digits --val-split 100000",
    "train lenet5 --data mnist:{file}", "train lenet5 --data digits --split-seed -1",
    # -- train: outputs and resume
    "train lenet5 --out {ro}/run", "train lenet5 --out {file}", "train lenet5 --out {file}/run",
    "train lenet5 --out {run}", "train lenet5 --resume {missing}",
    "train lenet5 --resume {garbage} --out {tmp}/r2", "train lenet5 --resume {dir} --out {tmp}/r3",
    "train alexnet --resume {ckpt} --out {tmp}/r4",
    "train lenet5 --resume --out {run} --batch-size 7",
    "train lenet5 --resume --out {run} --seed 5",
    "train lenet5 --save-every abc",
    # -- eval
    "eval lenet5", "eval lenet5 --checkpoint {missing}", "eval lenet5 --checkpoint {dir}",
    "eval lenet5 --checkpoint {garbage}", "eval lenet5 --checkpoint {empty}",
    "eval lenet5 --checkpoint {metrics}", "eval alexnet --checkpoint {ckpt}",
    "eval lenet5 --checkpoint {ckpt} --data bogus",
    "eval lenet5 --checkpoint {ckpt} --data folder:{folder2}",
    "eval lenet5 --checkpoint {ckpt} --data mnist:{missing}",
    "eval lenet5 --checkpoint {ckpt} --input-size 1x8x8",
    "eval lenet5 --checkpoint {ckpt} --input-size 3x32x32",
    "eval lenet5 --checkpoint {ckpt} --batch-size 0",
    "eval lenet5 --checkpoint {ckpt} --batch-size -1",
    "eval lenet5 --checkpoint {ckpt} --threads 0", "eval lenet5 --checkpoint {ckpt} --threads -1",
    "eval lenet5 --checkpoint {ckpt} --device bogus",
    "eval lenet5 --checkpoint {ckpt} --device " + NO_GPU,
    "eval lenet5 --checkpoint {ckpt} --tta bogus", "eval lenet5 --checkpoint {ckpt} --part bogus",
    "eval lenet5 --checkpoint {ckpt} --train-scale 0",
    "eval lenet5 --checkpoint {ckpt} --train-scale 512-256",
    "eval lenet5 --checkpoint {ckpt} --train-scale big",
    "eval lenet5 --checkpoint {ckpt} --part test",
    "eval lenet5 --checkpoint {ckpt} --set num_classes=3",
    "eval lenet5 --checkpoint {ckpt} --set nosuchkw=1",
    "eval lenet5 --checkpoint {ckpt} --val-split -1",
    "eval lenet5 --checkpoint {dcz} --data bogus", "eval alexnet --checkpoint {dcz}",
    "eval lenet5 --checkpoint {corrupt_dcz}",
    # -- plot
    "plot", "plot {missing}", "plot {empty_dir}", "plot {bad_metrics_dir}",
    "plot {file}", "plot {run} --output {ro}/c.png", "plot {run} --output {file}/c.png",
    "plot {run} --output {dir}", "plot {run} --output {tmp}/nodir/c.png",
    # -- compress / decompress
    "compress lenet5", "compress lenet5 --checkpoint {ckpt}",
    "compress lenet5 --checkpoint {missing} -o {tmp}/m.dcz",
    "compress lenet5 --checkpoint {dir} -o {tmp}/m.dcz",
    "compress lenet5 --checkpoint {garbage} -o {tmp}/m.dcz",
    "compress alexnet --checkpoint {ckpt} -o {tmp}/m.dcz",
    "compress nosuchnet --checkpoint {ckpt} -o {tmp}/m.dcz",
    "compress lenet5 --checkpoint {ckpt} -o {ro}/m.dcz",
    "compress lenet5 --checkpoint {ckpt} -o {tmp}/nodir/m.dcz",
    "compress lenet5 --checkpoint {ckpt} -o {file}/m.dcz",
    "compress lenet5 --checkpoint {ckpt} -o {dir}",
    "compress lenet5 --checkpoint {ckpt} -o {tmp}/m.dcz --lr -1",
    "compress lenet5 --checkpoint {ckpt} -o {tmp}/m.dcz --lr nan",
    "compress lenet5 --checkpoint {ckpt} -o {tmp}/m.dcz --quant-lr -1",
    "compress lenet5 --checkpoint {ckpt} -o {tmp}/m.dcz --batch-size 0",
    "compress lenet5 --checkpoint {ckpt} -o {tmp}/m.dcz --epochs -1",
    "compress lenet5 --checkpoint {ckpt} -o {tmp}/m.dcz --quant-epochs -1",
    "compress lenet5 --checkpoint {ckpt} -o {tmp}/m.dcz --rounds 0",
    "compress lenet5 --checkpoint {ckpt} -o {tmp}/m.dcz --weight-decay -1",
    "compress lenet5 --checkpoint {ckpt} -o {tmp}/m.dcz --prune bogus",
    "compress lenet5 --checkpoint {ckpt} -o {tmp}/m.dcz --prune fc1=200%",
    "compress lenet5 --checkpoint {ckpt} -o {tmp}/m.dcz --prune nosuchlayer=10%",
    "compress lenet5 --checkpoint {ckpt} -o {tmp}/m.dcz --prune fc1=-5%",
    "compress lenet5 --checkpoint {ckpt} -o {tmp}/m.dcz --bits conv=0",
    "compress lenet5 --checkpoint {ckpt} -o {tmp}/m.dcz --bits conv=99",
    "compress lenet5 --checkpoint {ckpt} -o {tmp}/m.dcz --bits bogus",
    "compress lenet5 --checkpoint {ckpt} -o {tmp}/m.dcz --span conv=0",
    "compress lenet5 --checkpoint {ckpt} -o {tmp}/m.dcz --span bogus",
    "compress lenet5 --checkpoint {ckpt} -o {tmp}/m.dcz --init bogus",
    "compress lenet5 --checkpoint {ckpt} -o {tmp}/m.dcz --data bogus",
    "compress lenet5 --checkpoint {ckpt} -o {tmp}/m.dcz --data folder:{folder2}",
    "compress lenet5 --checkpoint {ckpt} -o {tmp}/m.dcz --set num_classes=3",
    "decompress", "decompress {dcz}", "decompress {missing} -o {tmp}/w.safetensors",
    "decompress {garbage} -o {tmp}/w.safetensors", "decompress {ckpt} -o {tmp}/w.safetensors",
    "decompress {corrupt_dcz} -o {tmp}/w.safetensors", "decompress {dir} -o {tmp}/w.safetensors",
    "decompress {dcz} -o {ro}/w.safetensors", "decompress {dcz} -o {file}/w.safetensors",
    "decompress {dcz} -o {dir}", "decompress {dcz} -o {tmp}/nodir/w.safetensors",
    "decompress {dcz} -o {tmp}/nodir/w.safetensors --json",
    # -- bench, summary --energy
    "bench", "bench lenet5 --backend tvm", f"bench lenet5 --device {NO_GPU}",
    "bench lenet5 --device bogus", "bench lenet5 --int8 --device cuda",
    "bench lenet5 --int8 --calibration digits", "bench lenet5 --int8 --calibration bogus",
    "bench lenet5 --batch 0", "bench lenet5 --batch 1,abc", "bench lenet5 --threads 0",
    "bench lenet5 --runs 0", "bench lenet5 --warmup -1", "bench lenet5 --plot {ro}/l.png",
    "bench lenet5 --plot {tmp}/nodir/l.png", "bench lenet5 --plot {dir}",
    "bench lenet5 --backend onnxruntime --compile", "bench lenet5 --int8-backend onednn",
    "bench lenet5 --int8 --int8-backend arm", "bench lenet5 --cuda-graph",
    "bench lenet5 --compile-mode fastest", "bench lenet5 --dtype fp8",
    "bench lenet5 --dtype bf16 --int8", "bench lenet5 --dtype fp16 --backend onnxruntime",
    "summary lenet5 --energy --sram lots", "summary lenet5 --energy --precision fp8",
    "summary {missing}.dcz --energy", "summary {corrupt_dcz} --energy",
    "summary {dcz} --energy --precision int8", "summary lenet5 --energy --sram -1KiB",
    # -- ablate
    "ablate", "ablate gap_fc", "ablate nosuchablation --out {tmp}/ab",
    "ablate gap_fc --seeds 0 --out {tmp}/ab", "ablate gap_fc --seeds -1 --out {tmp}/ab",
    "ablate gap_fc --budget 0 --out {tmp}/ab", "ablate gap_fc --budget -2 --out {tmp}/ab",
    "ablate gap_fc --budget nan --out {tmp}/ab", "ablate gap_fc --iters 0 --out {tmp}/ab",
    "ablate gap_fc --out {ro}/ab", "ablate gap_fc --out {file}", "ablate gap_fc --out {file}/ab",
    "ablate gap_fc --data bogus --out {tmp}/ab",
    "ablate gap_fc --data mnist:{missing} --out {tmp}/ab",
    "ablate --list gap_fc", "ablate gap_fc --threads 0 --out {tmp}/ab",
    # -- report
    "report", "report --out {ro}/rep", "report --out {file}", "report --out {file}/rep",
    "report --out {tmp}/rep --models nosuchnet*", "report --out {tmp}/rep --results {missing}",
    "report --out {tmp}/rep --results {file}", "report --out {tmp}/rep --layers nosuchnet",
]

# distillation and ensembles (issue 15)
CASES += [
    "distill lenet5 --teacher {tmp}/none.safetensors --out {tmp}/d",
    "distill lenet5 --teacher {ckpt} --out {tmp}/d --transfer-set only:",
    "distill lenet5 --teacher {ckpt} --out {tmp}/d --transfer-set only:42",
    "distill lenet5 --teacher {ckpt} --out {tmp}/d --alpha 1.5",
    "distill lenet5 --teacher {ckpt} --out {tmp}/d --T 0",
    "distill lenet5 --teacher {ckpt} --out {ckpt}",
    "distill lenet_300_100 --teacher {ckpt} --out {tmp}/d",
    "distill lenet5 --teacher lenet5_caffe:{ckpt} --out {tmp}/d",
    "eval lenet5 --checkpoint {ckpt} --checkpoint {tmp}/none.safetensors",
    "distill lenet5 --out {tmp}/d",
    "distill lenet5 --teacher {ckpt} --soft-targets {soft3} --out {tmp}/d",
    "distill lenet5 --soft-targets {missing} --out {tmp}/d",
    "distill lenet5 --soft-targets {dir} --out {tmp}/d",
    "distill lenet5 --soft-targets {garbage} --out {tmp}/d",
    "distill lenet5 --soft-targets {ckpt} --out {tmp}/d",
    "distill lenet5 --soft-targets {soft3} --out {tmp}/d",
    "distill lenet5 --soft-targets {soft10} --out {tmp}/d",
    "distill lenet_300_100 --soft-targets {soft10} --out {tmp}/d",
    "distill lenet5 --soft-targets {soft10} --save-soft-targets {tmp}/s.st --out {tmp}/d",
    "distill lenet5 --teacher {ckpt} --save-soft-targets {dir} --out {tmp}/d",
    "distill lenet5 --teacher {ckpt} --save-soft-targets {ro}/s.st --out {tmp}/d",
    "distill lenet5 --teacher {ckpt} --save-soft-targets {tmp}/nodir/s.st --out {tmp}/d",
    "distill lenet5 --teacher {ckpt} --save-soft-targets {tmp}/s.st --augment crop:2 "
    "--out {tmp}/d",
    "distill lenet5 --soft-targets {soft10} --augment flip --out {tmp}/d",
]

# structured pruning, binary nets, search, pictures, and weights files everywhere
CASES += [
    "prune lenet5 --out {tmp}/p", "prune lenet5 --checkpoint {missing} --out {tmp}/p",
    "prune lenet5 --checkpoint {dir} --out {tmp}/p",
    "prune alexnet --checkpoint {ckpt} --out {tmp}/p",
    "prune lenet5 --checkpoint {ckpt} --out {tmp}/p --macs 0",
    "prune lenet5 --checkpoint {ckpt} --out {tmp}/p --macs 1.5",
    "prune lenet5 --checkpoint {ckpt} --out {tmp}/p --macs 0.001",
    "prune lenet5 --checkpoint {ckpt} --out {tmp}/p --score bogus",
    "prune lenet5 --checkpoint {ckpt} --out {file}",
    "prune lenet5 --checkpoint {ckpt} --out {ro}/p",
    "binarize lenet5 --checkpoint {ckpt} --out {tmp}/b",
    "binarize lenet5 --checkpoint {ckpt} --mode ternary --out {tmp}/b",
    "binarize lenet5 --checkpoint {missing} --mode bwn --out {tmp}/b",
    "binarize alexnet --checkpoint {ckpt} --mode bwn --out {tmp}/b",
    "binarize lenet5 --checkpoint {ckpt} --mode xnor --out {file}",
    "binarize lenet5 --checkpoint {ckpt} --mode xnor --out {ro}/b",
    "search", "search enas", "search enas --out {tmp}/s --space nas",
    "search enas --out {tmp}/s --budget 0", "search enas --out {tmp}/s --budget -1",
    "search enas --out {file}", "search enas --out {ro}/s",
    "search enas --out {tmp}/s --data bogus",
    "search compound", "search compound --out {tmp}/c --budget 0",
    "search compound --out {tmp}/c --budget -1", "search compound --out {tmp}/c --budget lots",
    "search compound --out {tmp}/c --budget nan", "search compound --out {tmp}/c --budget 10",
    "search compound --out {tmp}/c --objective accuracy",
    "search compound --out {tmp}/c --alphas 0.5,1", "search compound --out {tmp}/c --betas x",
    "search compound --out {tmp}/c --alphas 2 --betas 1.5",
    "search compound --out {tmp}/c --phi 0", "search compound --out {tmp}/c --w 0.07",
    "search compound --out {tmp}/c --seeds 0", "search compound --out {tmp}/c --epochs 0",
    "search compound --out {tmp}/c --resolution 0", "search compound --out {file}",
    "search compound --out {ro}/c", "search compound --out {tmp}/nodir/c",
    "search compound --out {dir}/..", "search compound --out {tmp}/c --data bogus",
    "search compound --out {tmp}/c --data mnist:{missing}",
    "visualize lenet5 --out {tmp}/v", "visualize lenet5 --checkpoint {missing} --out {tmp}/v",
    "visualize alexnet --checkpoint {ckpt} --filters --out {tmp}/v",
    "visualize lenet5 --checkpoint {ckpt} --filters --out {file}",
    "visualize lenet5 --checkpoint {ckpt} --filters --out {ro}/v",
    "visualize lenet5 --checkpoint {ckpt} --saliency guided --out {tmp}/v",
    "visualize lenet5 --checkpoint {ckpt} --saliency bogus --out {tmp}/v",
    "visualize lenet5 --checkpoint {ckpt} --neighbours 0 --out {tmp}/v",
    "summary lenet5 --checkpoint {missing}", "summary lenet5 --checkpoint {dir}",
    "summary alexnet --checkpoint {dcz}", "summary lenet5 --checkpoint {garbage}",
    "bench lenet5 --checkpoint {missing}", "bench lenet5 alexnet --checkpoint {dcz}",
    "bench alexnet --checkpoint {dcz}", "export alexnet -o {tmp}/m.onnx --checkpoint {dcz}",
    "export lenet5 -o {tmp}/m.onnx --checkpoint {corrupt_dcz}",
]

# the same mistakes in every command that takes a model or an input size
for cmd in MODELS:
    extra = {"export": " -o {tmp}/x.onnx", "eval": " --checkpoint {ckpt}",
             "compress": " --checkpoint {ckpt} -o {tmp}/x.dcz"}.get(cmd, "")
    CASES += [f"{cmd} nosuchnet{extra}", f"{cmd} 'lenet5 x'{extra}", f"{cmd} lenet5{extra} --set x",
              f"{cmd} lenet5{extra} --set 1x=2", f"{cmd} lenet5{extra} --nosuchflag"]
CASES += [  # -- checklist
    "checklist", "checklist {missing}", "checklist {dir}", "checklist {garbage}",
    "checklist {empty}", "checklist {file}", "checklist {checklist} --only 999-99",
    "checklist {checklist} --only 002-03", "checklist {checklist} -o {ro}/c.md",
    "checklist {checklist} -o {tmp}/nodir/c.md", "checklist {checklist} -o {dir}",
    "checklist {checklist} --only",
]

for cmd in SIZED:
    extra = {"export": " -o {tmp}/x.onnx", "eval": " --checkpoint {ckpt}"}.get(cmd, "")
    for size in ["-3x32x32", "0x32x32", "abc", "3x", "x", "1x32x-32", "1.5x32x32", "1x2x3x4x5",
                 "1x4x4"]:
        CASES.append(f"{cmd} lenet5{extra} --input-size {size}")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """What the cases point at, made once: a trained checkpoint, its .dcz, broken files."""
    import torch

    from cnnlab.compress.distill import SoftTargets
    from cnnlab.data.core import TensorData

    root = tmp_path_factory.mktemp("bad")
    run = root / "run"
    assert main(["train", "lenet5", "--iters", "2", "--batch-size", "16", "--threads", "1",
                 "--out", str(run), "--json"]) == 0
    ckpt = run / "last.safetensors"
    dcz = root / "m.dcz"
    assert main(["compress", "lenet5", "--checkpoint", str(ckpt), "--rounds", "1", "--epochs",
                 "0", "--quant-epochs", "0", "--prune", "conv=50%,fc=50%", "-o", str(dcz),
                 "--json"]) == 0
    corrupt = root / "corrupt.dcz"
    data = bytearray(dcz.read_bytes())
    data[len(data) // 2] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    (root / "garbage.safetensors").write_bytes(b"\x99" * 64)
    (root / "empty.safetensors").write_bytes(b"")
    (root / "file.txt").write_text("a file, not a folder\n")
    (root / "checklist.md").write_text("| ID | Item | Lines | Status | Evidence |\n"
                                       "| 001-19 | 144 crops | 342 | MISSING | none |\n")
    (root / "existing.out").write_text("keep me\n")
    (root / "empty_dir").mkdir()
    (root / "a_dir").mkdir()
    bad = root / "bad_metrics"
    bad.mkdir()
    (bad / "metrics.jsonl").write_text('{"epoch": 1, "loss": 0.5}\nnot json\n{"epoch"\n')
    folder2 = root / "folder2"
    for cls in ("cat", "dog"):
        (folder2 / cls).mkdir(parents=True)
    _two_images(folder2)
    soft = {}
    for k in (3, 10):  # stored soft targets of other images (3 classes; 10 classes)
        soft[f"soft{k}"] = str(root / f"soft{k}.safetensors")
        SoftTargets.compute(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, k)),
                            TensorData(torch.rand(5, 1, 8, 8), torch.zeros(5, dtype=torch.long))
                            ).save(soft[f"soft{k}"])
    ro = root / "readonly"
    ro.mkdir()
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
    if os.geteuid() == 0:  # root writes into any mode-0500 folder; /sys refuses even root
        ro = "/sys"
    return {"tmp": str(root / "scratch"), "ckpt": str(ckpt), "dcz": str(dcz),
            "corrupt_dcz": str(corrupt), "garbage": str(root / "garbage.safetensors"),
            "empty": str(root / "empty.safetensors"), "missing": str(root / "missing"),
            "file": str(root / "file.txt"), "dir": str(root / "a_dir"),
            "empty_dir": str(root / "empty_dir"), "bad_metrics_dir": str(bad),
            "metrics": str(run / "metrics.jsonl"), "folder2": str(folder2), "ro": str(ro),
            "run": str(run), "existing_out": str(root / "existing.out"),
            "checklist": str(root / "checklist.md"), **soft}


def _two_images(folder):
    from PIL import Image

    for i, cls in enumerate(("cat", "dog")):
        for j in range(3):
            Image.new("RGB", (16, 16), (40 * i, 60 * j, 90)).save(folder / cls / f"{j}.png")


def _tree(root) -> set[str]:
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        out.update(os.path.join(dirpath, n) for n in dirnames + filenames)
    return out


def _argv(case: str, files: dict) -> list[str]:
    import shlex

    return shlex.split(case.format(**files))


def test_the_table_is_large_and_has_no_repeats():
    assert len(CASES) >= 200
    assert len(set(CASES)) == len(CASES)


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(case, files, tmp_path, monkeypatch,
                                                         capsys):
    os.makedirs(files["tmp"], exist_ok=True)
    monkeypatch.chdir(tmp_path)
    root = os.path.dirname(files["tmp"])
    before = _tree(root) | _tree(tmp_path)
    capsys.readouterr()
    rc = main(_argv(case, files))
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    after = _tree(root) | _tree(tmp_path)
    assert rc == 2, f"exit {rc}; stderr: {err[-500:]}"
    assert len(lines) == 1 and lines[0].startswith("cnnlab: error: "), err[-800:]
    assert after == before, f"left: {sorted(after - before)}; removed: {sorted(before - after)}"

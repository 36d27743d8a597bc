"""Ship a ``cnnlab train`` run's best weights in the package (``cnnlab/weights/``).

    PYTHONPATH=. python tools/bundle_weights.py RUN_DIR [--tag TAG] [--dcz FILE]

Writes ``cnnlab/weights/<model>[.<tag>].safetensors`` (weights alone, with the run in its
metadata, as ``cnnlab decompress`` writes them) and its entry in ``cnnlab/weights/index.json``:
the data, the held-out split, and the best validation top-1 of the run, re-measured here on
that split (the number ``cnnlab list --pretrained`` prints). Without ``--tag`` the weights are
the model's default (``pretrained=True``); with it, ``pretrained="<tag>"``. ``--dcz`` ships
the run's ``cnnlab compress`` file beside them, with its top-1 (decoded and re-measured on the
same split) and its size against the dense fp32 weights.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(run_dir: str, tag: str | None = None, dcz: str | None = None) -> None:
    from safetensors.torch import save

    from cnnlab.bundled import WEIGHTS, index
    from cnnlab.io import write_bytes_atomic
    from cnnlab.runspec import RunSpec, load_weights, model_and_data
    from cnnlab.train.evaluate import evaluate

    torch.set_num_threads(1)
    ckpt = Path(run_dir) / "best.safetensors"
    spec = RunSpec.from_checkpoint(ckpt)
    model, split, size, kwargs = model_and_data(spec.model, spec.data_spec, spec.val_split,
                                                spec.split_seed, spec.input_size,
                                                spec.model_args)
    load_weights(ckpt, model)
    val = spec.normalise(split.val)
    acc = float(evaluate(model.eval(), val)["top1"])
    name = spec.model
    key = f"{name}.{tag}" if tag else name
    meta = {"model": name, "source": f"cnnlab train ({spec.data_spec})",
            "cnnlab_run": json.dumps({**spec.to_run_info(), "model": name})}
    WEIGHTS.mkdir(exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    write_bytes_atomic(WEIGHTS / f"{key}.safetensors", save(state, metadata=meta))
    entries = index()
    entries[key] = {"file": f"{key}.safetensors", "data": spec.data_spec,
                    "val": f"{len(val.y)} held-out images (" + (
                        f"val_split {spec.val_split}, seed {spec.split_seed})"
                        if spec.val_split else "the data set's own split)"),
                    "accuracy": round(acc, 2), "num_classes": kwargs["num_classes"],
                    "input_size": list(size), "mean": list(spec.mean or ()),
                    "std": list(spec.std or ())}
    if dcz:
        entries[key].update(_dcz(Path(dcz), key, model, val))
    write_bytes_atomic(WEIGHTS / "index.json",
                       (json.dumps(entries, indent=1, sort_keys=True) + "\n").encode())
    print(f"{key}: {acc:.2f} % top-1 on {len(val.y)} held-out images"
          + (f"; .dcz {entries[key]['dcz_accuracy']:.2f} %, {entries[key]['dcz_ratio']:.1f}x"
             if dcz else ""))


def _dcz(path: Path, key: str, model, val) -> dict:
    """Ship a .dcz beside the weights: its decoded top-1 on ``val`` and its compression."""
    from cnnlab.bundled import WEIGHTS
    from cnnlab.compress.pipeline import read_weights
    from cnnlab.io import write_bytes_atomic
    from cnnlab.train.evaluate import evaluate

    _, state = read_weights(path)
    model.load_state_dict(state)
    acc = float(evaluate(model.eval(), val)["top1"])
    dense = sum(v.numel() * 4 for v in state.values())
    data = path.read_bytes()
    write_bytes_atomic(WEIGHTS / f"{key}.dcz", data)
    return {"dcz": f"{key}.dcz", "dcz_accuracy": round(acc, 2),
            "dcz_ratio": round(dense / len(data), 1)}


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--tag")
    ap.add_argument("--dcz")
    a = ap.parse_args()
    main(a.run_dir, a.tag, a.dcz)

"""Ship a ``cnnlab train`` run's best weights in the package (``cnnlab/weights/``).

    PYTHONPATH=. python tools/bundle_weights.py RUN_DIR

Writes ``cnnlab/weights/<model>.safetensors`` (weights alone, with the run in its metadata,
as ``cnnlab decompress`` writes them) and its entry in ``cnnlab/weights/index.json``: the
data, the held-out split, and the best validation top-1 of the run, re-measured here on that
split (the number ``cnnlab list --pretrained`` prints).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(run_dir: str) -> None:
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
    meta = {"model": name, "source": f"cnnlab train ({spec.data_spec})",
            "cnnlab_run": json.dumps({**spec.to_run_info(), "model": name})}
    WEIGHTS.mkdir(exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    write_bytes_atomic(WEIGHTS / f"{name}.safetensors", save(state, metadata=meta))
    entries = index()
    entries[name] = {"file": f"{name}.safetensors", "data": spec.data_spec,
                     "val": f"{len(val.y)} held-out images (val_split {spec.val_split}, "
                            f"seed {spec.split_seed})",
                     "accuracy": round(acc, 2), "num_classes": kwargs["num_classes"],
                     "input_size": list(size), "mean": list(spec.mean or ()),
                     "std": list(spec.std or ())}
    write_bytes_atomic(WEIGHTS / "index.json",
                       (json.dumps(entries, indent=1, sort_keys=True) + "\n").encode())
    print(f"{name}: {acc:.2f} % top-1 on {len(val.y)} held-out images")


if __name__ == "__main__":
    main(sys.argv[1])

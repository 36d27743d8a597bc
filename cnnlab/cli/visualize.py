"""``cnnlab visualize``: pictures of a trained model as PNGs — first-layer filters,
feature-space neighbours, a PCA/t-SNE map of the features, saliency maps."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from cnnlab.cli.common import (
    CliError,
    emit,
    json_opt,
    optional_size,
    parse_sets,
    set_opt,
    split_opts,
)

SALIENCY = ("guided", "grad", "cam")


def _methods(text: str | None) -> list[str]:
    methods = [m.strip() for m in (text or "").split(",") if m.strip()]
    bad = [m for m in methods if m not in SALIENCY]
    if bad:
        raise CliError(f"unknown --saliency {bad[0]!r}: guided, grad or cam (comma-separated)")
    return methods


def _out_dir(text: str) -> tuple[Path, list[Path]]:
    """The output folder, checked writable before any work, and the folders that must be
    made for it (deepest first)."""
    out = Path(text)
    if out.exists():
        if not out.is_dir():
            raise CliError(f"--out {text} is not a directory")
        if not os.access(out, os.W_OK | os.X_OK):
            raise CliError(f"--out {text} is not writable")
        return out, []
    parent = next((p for p in out.parents if p.exists()), Path("."))
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise CliError(f"--out {text}: cannot create it ({parent} is not a writable directory)")
    return out, [p for p in (out, *out.parents) if not p.exists()]


def _images(args, split, size):
    """(stored images, labels or None, names) of --images: validation indices or image
    files (read with Pillow and fitted to the model's input like the training data)."""
    import torch

    from cnnlab.data import fit_images

    items = [s.strip() for s in (args.images or "").split(",") if s.strip()]
    if not items:
        index = torch.arange(min(4, len(split.val)))
        return split.val.x[index], split.val.y[index], [f"val #{i}" for i in index.tolist()]
    if all(s.isdigit() for s in items):
        index = torch.tensor([int(s) for s in items])
        if int(index.max()) >= len(split.val):
            raise CliError(f"--images {index.max()} is out of range: the validation set has "
                           f"{len(split.val)} images")
        return split.val.x[index], split.val.y[index], [f"val #{i}" for i in index.tolist()]
    try:
        import numpy as np
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise CliError("image files need Pillow: pip install 'cnnlab[data]'") from None
    out = []
    for s in items:
        if not Path(s).is_file():
            raise CliError(f"--images {s}: no such file (give files, or validation indices)")
        try:
            with Image.open(s) as im:
                arr = np.asarray(im.convert("RGB" if size[0] == 3 else "L"))
        except (UnidentifiedImageError, OSError):
            raise CliError(f"--images {s}: not an image Pillow can read") from None
        x = torch.from_numpy(arr.copy()).reshape(arr.shape[0], arr.shape[1], -1)
        out.append(fit_images(x.permute(2, 0, 1)[None], size))
    return torch.cat(out), None, items


def _load(args, run, need_data: bool):
    """The model with the checkpoint's weights, and (when a picture needs images) the run's
    data normalised as in training."""
    from dataclasses import replace

    from cnnlab.models import create_model
    from cnnlab.runspec import model_and_data
    from cnnlab.train import load_checkpoint

    sets = run.builder_args(parse_sets(args.set))
    if not need_data:
        model = create_model(args.model, **sets)
        load_checkpoint(args.checkpoint, model)
        return model.eval(), None, None
    spec, val_split, split_seed = run.split_args(args.data, args.val_split, args.split_seed)
    if not spec:
        raise CliError("--data is needed: the checkpoint does not name its dataset")
    size = optional_size(args.input_size) or run.input_size
    model, split, size, _ = model_and_data(args.model, spec, val_split, split_seed, size, sets)
    load_checkpoint(args.checkpoint, model)
    split = replace(split, train=run.normalise(split.train), val=run.normalise(split.val))
    return model.eval(), split, size


def _check(args, model, split, x, methods):
    """Every refusal before the first file is written."""
    from cnnlab.visualize import cam_layer, check_relu_family, first_conv

    if args.filters:
        first_conv(model)
    if args.neighbours is not None:
        if not 1 <= args.neighbours <= len(split.val):
            raise CliError(f"--neighbours must be between 1 and {len(split.val)} (validation "
                           f"images), got {args.neighbours}")
        if not 1 <= args.k <= len(split.train):
            raise CliError(f"-k must be between 1 and {len(split.train)} (training images)")
    if "guided" in methods:
        check_relu_family(model, x[:1])
    if "cam" in methods:
        cam_layer(model, x[:1])


def _draw(args, model, split, picked, out: Path, methods, written: list, report: dict):
    import torch

    from cnnlab import visualize as vis

    ckpt = args.checkpoint
    if args.filters:
        written.append(vis.plot_filters(model, out / "filters.png", ckpt))
    feats = {}
    if args.neighbours is not None or args.embedding:
        feats = {part: vis.extract_features(model, getattr(split, part))
                 for part in ("train", "val")}
    if args.neighbours is not None:
        pick = torch.randperm(len(split.val), generator=torch.Generator().manual_seed(
            args.seed))[:args.neighbours].sort().values
        idx, dist = vis.nearest_neighbours(feats["val"][pick], feats["train"], args.k,
                                           args.metric)
        same = (split.train.y[idx] == split.val.y[pick][:, None]).float().mean().item()
        report["neighbours_same_class"] = round(100 * same, 2)
        note = ""
        if args.compress:
            if not 1 <= args.compress <= min(feats["train"].shape):
                raise CliError(f"--compress must be between 1 and {feats['train'].shape[1]} "
                               "(the feature size)")
            overlap = vis.compressed_overlap(feats["train"], feats["val"], args.compress,
                                             args.k, args.metric)
            report[f"pca{args.compress}_overlap"] = round(100 * overlap, 2)
            note = f"PCA-{args.compress} keeps {100 * overlap:.0f}% of them (all val)"
        written.append(vis.plot_neighbours(model, split.val, split.train, pick, idx, dist,
                                           out / "neighbours.png", ckpt, split.classes,
                                           args.metric, note))
    if args.embedding:
        written.append(vis.plot_embedding(model, feats["val"], split.val.y,
                                          out / f"embedding_{args.embedding}.png", ckpt,
                                          split.classes, args.embedding, seed=args.seed))
    if methods:
        images, labels, _ = picked
        x = split.val.normalize(images)
        for m in methods:
            written.append(vis.plot_saliency(model, images, x, m, out / f"saliency_{m}.png",
                                             ckpt, labels=labels, classes=split.classes))


def cmd_visualize(args) -> int:
    import torch

    from cnnlab.runspec import RunSpec

    if args.threads:
        torch.set_num_threads(args.threads)
    methods = _methods(args.saliency)
    if not (args.filters or args.neighbours is not None or methods or args.embedding):
        raise CliError("nothing to draw: give --filters, --neighbours N, --saliency METHOD "
                       "or --embedding pca|tsne")
    out, made = _out_dir(args.out)
    run = RunSpec.from_checkpoint(args.checkpoint)
    run.check_model(args.model)
    need_data = args.neighbours is not None or bool(methods) or bool(args.embedding)
    model, split, size = _load(args, run, need_data)
    picked = _images(args, split, size) if methods else None
    _check(args, model, split, split.val.normalize(picked[0]) if methods else None, methods)
    written: list[str] = []
    report = {"model": args.model, "checkpoint": args.checkpoint}
    if made:
        out.mkdir(parents=True)
    try:
        _draw(args, model, split, picked, out, methods, written, report)
    except BaseException:
        for f in written:  # nothing half-done is left behind
            Path(f).unlink(missing_ok=True)
        for p in made:  # only the folders this run made
            with contextlib.suppress(OSError):
                p.rmdir()
        raise
    report["files"] = written
    if args.json:
        emit(report)
    else:
        for f in written:
            print(f)
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("visualize", help="PNGs of a trained model: filters, neighbours, "
                       "feature map, saliency")
    p.add_argument("model")
    p.add_argument("--checkpoint", required=True, help="trained weights (cnnlab checkpoint)")
    p.add_argument("--data", help="dataset (default: the checkpoint's)")
    split_opts(p, "carve N validation images (default: the checkpoint's, same --data)")
    p.add_argument("--input-size", help="CxHxW the model sees (default: the checkpoint's)")
    set_opt(p, "builder argument of the checkpoint's model (repeatable)")
    p.add_argument("--filters", action="store_true", help="first-layer filters as a grid")
    p.add_argument("--neighbours", type=int, metavar="N",
                   help="N validation images, each with its k nearest training images in "
                   "the penultimate features")
    p.add_argument("-k", type=int, default=6, help="neighbours per image (6, as AlexNet)")
    p.add_argument("--metric", choices=["euclidean", "cosine"], default="euclidean")
    p.add_argument("--compress", type=int, metavar="D",
                   help="also search PCA-D features and report how many neighbours stay")
    p.add_argument("--embedding", choices=["pca", "tsne"],
                   help="2-d map of the validation features, coloured by class")
    p.add_argument("--saliency", metavar="guided|grad|cam",
                   help="saliency maps (comma-separated) for --images")
    p.add_argument("--images", help="validation indices or image files, comma-separated "
                   "(default: the first 4 validation images)")
    p.add_argument("--seed", type=int, default=0, help="which validation images --neighbours "
                   "draws")
    p.add_argument("--threads", type=int, help="CPU threads (torch.set_num_threads)")
    p.add_argument("--out", required=True, help="folder for the PNGs")
    json_opt(p)
    p.set_defaults(func=cmd_visualize)

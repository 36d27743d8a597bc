"""What `cnnlab train` and `cnnlab distill` share around a run: threads, the process group's
end, the final report."""

from __future__ import annotations

from cnnlab.cli.common import emit


def setup(args):
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)


def shutdown():
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def report(args, split, recipe, res, out) -> None:
    final = {"model": args.model, "data": split.name, "recipe": recipe.name,
             "epochs": len(res.history), "steps": res.steps, **res.metrics,
             "images_per_s": round(res.images_per_s, 1), "train_seconds": round(res.seconds, 2),
             "checkpoint": res.checkpoint}
    if args.json:
        emit(final)
        return
    top = f"top-1 {res.metrics['top1']:.2f}%, " if "top1" in res.metrics else ""
    print(f"done: {top}{res.steps} steps in {res.seconds:.1f}s ({res.images_per_s:.0f} img/s)")
    print(f"run saved in {out}/ (last.safetensors, best.safetensors, metrics.jsonl)")


def default_threads(model, size) -> int:
    """Threads when ``--threads`` is not given. On a shared 2-core machine a small model's
    step does not gain from a second thread and collapses when the other core is busy
    (LeNet-5: 3,176 img/s with 1 thread, 65-90 with 2 while another process ran), so
    models under ``SMALL_MODEL_MACS`` mult-adds per image train on one thread; larger ones
    use PyTorch's default (all cores)."""
    import torch

    from cnnlab.profile import profile

    try:
        macs = profile(model, size).macs
    except (ValueError, RuntimeError, TypeError):
        return torch.get_num_threads()
    return 1 if macs < SMALL_MODEL_MACS else torch.get_num_threads()


SMALL_MODEL_MACS = 5e6  # LeNet-5 0.4 M and the LeNet MLPs are under it; ResNet-20 41 M is not


def test_scales(args, size) -> tuple[float, ...] | None:
    """VGG's Q for ``--train-scale`` (pixels) or the checkpoint's ``scale:LO-HI`` augmentation
    (multiples of the input); None: the default scales."""
    from cnnlab.train.tta import q_scales

    crop = min(size[-2:]) if size else 224
    if args.train_scale:
        return q_scales(tuple(v / crop for v in args.train_scale), crop)
    from cnnlab.data.augment import parse_augment
    from cnnlab.runspec import weights_kind
    from cnnlab.train.checkpoint import read_meta

    path = args.checkpoint[0] if isinstance(args.checkpoint, list) else args.checkpoint
    if weights_kind(path) != "checkpoint":  # a .dcz or weights file records no augmentation
        return None
    scale = parse_augment(read_meta(path).get("config", {}).get("augment")).get("scale")
    return q_scales(scale, crop) if scale else None

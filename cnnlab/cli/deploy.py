"""``cnnlab bench``: measured latency under a deployment configuration, and the energy table
that ``cnnlab summary --energy`` prints (see :mod:`cnnlab.deploy`)."""

from __future__ import annotations

from pathlib import Path

from cnnlab.cli.common import CliError, emit, input_size_opt, json_opt, optional_size, set_opt


def _batches(text: str) -> list[int]:
    try:
        out = [int(b) for b in text.split(",")]
    except ValueError:
        out = []
    if not out or any(b <= 0 for b in out):
        raise CliError(f"--batch takes positive sizes separated by commas, got {text!r}")
    return out


def _check_plot(path: str | None) -> None:
    if path:
        from cnnlab.cli.common import output_file

        output_file(path)


def _calibration(spec: str | None, size, n: int = 256):
    """Normalised images from a dataset spec (``mnist:data/mnist``) for int8 calibration;
    they must have the model's input shape."""
    if spec is None:
        return None
    from cnnlab.data import load_dataset

    split = load_dataset(spec)
    data = split.train if len(split.train) else split.val
    if tuple(data.x.shape[1:]) != tuple(size):
        raise CliError(f"calibration images are {'x'.join(map(str, data.x.shape[1:]))} but "
                       f"the model takes {'x'.join(map(str, size))}")
    return data.normalize(data.x[:n])


def _checkpoint_spec(args):
    """The run of ``--checkpoint`` (a checkpoint, a .dcz or decompressed weights)."""
    if not args.checkpoint:
        return None
    if len(args.models) != 1:
        raise CliError("--checkpoint goes with one model")
    from cnnlab.cli.common import input_file
    from cnnlab.runspec import RunSpec

    spec = RunSpec.from_checkpoint(input_file(args.checkpoint, "checkpoint"))
    spec.check_model(args.models[0])
    return spec


def cmd_bench(args) -> int:
    from cnnlab.cli.common import input_size, parse_sets
    from cnnlab.deploy.bench import CHECKED, bench, check_options, kendall_tau
    from cnnlab.models import create_model, model_info

    batches = _batches(args.batch)
    opts = dict(backend=args.backend, channels_last=args.channels_last, fuse_bn=args.fuse_bn,
                compile=args.compile, int8=args.int8, device=args.device,
                int8_backend=args.int8_backend or "x86", compile_mode=args.compile_mode,
                cuda_graph=args.cuda_graph, dtype=args.dtype)
    if args.int8_backend and not args.int8:
        raise CliError("--int8-backend needs --int8")
    check_options(**{k: opts[k] for k in CHECKED})
    _check_plot(args.plot)
    if args.threads is not None and args.threads <= 0:
        raise CliError("--threads must be positive")
    if args.runs <= 0 or args.warmup < 0:
        raise CliError("--runs must be positive and --warmup not negative")
    kwargs = parse_sets(args.set)
    rows = []
    for name in args.models:
        model_info(name)  # unknown names fail before any timing
    spec = _checkpoint_spec(args)
    if spec:
        kwargs = spec.builder_args(kwargs)
    for name in args.models:
        size = input_size(name, optional_size(args.input_size), kwargs,
                          spec.input_size if spec else None)
        model = create_model(name, **kwargs)
        if spec:
            from cnnlab.runspec import load_weights

            load_weights(args.checkpoint, model)
        calib = _calibration(args.calibration, size) if args.int8 else None
        from cnnlab.profile import profile

        prof = profile(model, size)
        for t in bench(model, batches=batches, input_size=size, threads=args.threads,
                       runs=args.runs, warmup=args.warmup, calibration=calib, **opts):
            rows.append({**t.to_dict(), "model": name, "macs": prof.macs,
                         "memory_access": prof.memory_access, "params": prof.params})
    ones = [r for r in rows if r["batch"] == batches[0]]
    tau = kendall_tau([r["macs"] for r in ones], [r["median_ms"] for r in ones]) \
        if len(ones) > 2 else None
    if args.plot:
        _plot(ones, args.plot)
    if args.json:
        emit({"rows": rows, "kendall_tau_macs_latency": tau, "threads": args.threads})
        return 0
    _print(rows, tau, batches[0])
    return 0


def _print(rows, tau, batch) -> None:
    from cnnlab.table import human, render

    table = [[r["model"], "x".join(map(str, r["input_size"])), r["batch"], human(r["macs"]),
              human(r["memory_access"]), human(r["params"]), f"{r['median_ms']:.2f}",
              f"{r['p10_ms']:.2f}–{r['p90_ms']:.2f}", f"{r['images_per_s']:.1f}"]
             for r in rows]
    print(render(table, ["model", "input", "batch", "mult-adds", "MAC", "params",
                         "ms (median)", "p10–p90", "images/s"], right=set(range(2, 9))))
    print(f"\nconfiguration: {rows[0]['config']}")
    if tau is not None:
        print(f"Kendall tau between mult-adds and latency at batch {batch}: {tau:+.2f} "
              "(1: mult-adds rank the models as latency does)")


def _plot(rows, path) -> None:
    from cnnlab.io import atomic_path
    from cnnlab.plot import _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    for r in rows:
        ax.scatter(r["macs"] / 1e6, r["median_ms"])
        ax.annotate(r["model"], (r["macs"] / 1e6, r["median_ms"]), fontsize=7,
                    xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel("mult-adds (millions)")
    ax.set_ylabel(f"latency, batch {rows[0]['batch']} (ms, median)")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def energy_report(model_arg: str, size, kwargs, sram: str, precision: str):
    """The energy report of a registered model (profiled at ``size``) or of a ``.dcz``."""
    from cnnlab.deploy.energy import energy, energy_of_dcz, parse_bytes

    sram_bytes = parse_bytes(sram)
    if model_arg.endswith(".dcz"):
        if not Path(model_arg).is_file():
            raise CliError(f"no such file: {model_arg}")
        from cnnlab.cli.common import input_file

        input_file(model_arg, ".dcz file")
        if precision != "fp32":
            raise CliError("a .dcz stores its own weight bits: leave --precision at fp32")
        return energy_of_dcz(model_arg, sram_bytes=sram_bytes)
    from cnnlab.profile import profile

    return energy(profile(model_arg, size, **kwargs), sram_bytes=sram_bytes,
                  precision=precision)


def print_energy(e) -> None:
    from cnnlab.deploy.energy import ASSUMPTIONS
    from cnnlab.table import render

    rows = [[ly.name or "(model)", ly.macs, ly.weight_bits // 8, f"{ly.compute_pj / 1e6:.3f}",
             f"{ly.weight_pj / 1e6:.3f}", f"{ly.activation_pj / 1e6:.3f}",
             f"{ly.total_pj / 1e6:.3f}"] for ly in e.layers if ly.total_pj]
    print(render(rows, ["layer", "mult-adds", "weight bytes", "compute µJ", "weights µJ",
                        "activations µJ", "total µJ"], right=set(range(1, 7))))
    where = "SRAM" if e.weights_in_sram else "DRAM"
    print(f"\n{e.model}, {e.precision}: {e.total_pj / 1e6:.3f} µJ per inference "
          f"(compute {e.compute_pj / 1e6:.3f}, weights {e.weight_pj / 1e6:.3f} from {where}: "
          f"{e.weight_bytes:,} bytes against {e.sram_bytes:,} of SRAM, activations "
          f"{e.activation_pj / 1e6:.3f})")
    print(f"model: {ASSUMPTIONS}")


def add_commands(sub) -> None:
    p = sub.add_parser("bench", help="measured latency (median, spread, images/s)")
    p.add_argument("models", nargs="+", metavar="MODEL")
    p.add_argument("--batch", default="1", help="batch sizes, e.g. 1,32")
    p.add_argument("--checkpoint", help="weights of the one MODEL: a checkpoint, a .dcz or "
                   "decompressed weights (its builder arguments and input size too)")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads")
    input_size_opt(p)
    set_opt(p)
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--fuse-bn", action="store_true", help="fold BN into convolutions")
    p.add_argument("--compile", action="store_true", help="torch.compile first")
    p.add_argument("--compile-mode", metavar="MODE", help="torch.compile's mode (implies "
                   "--compile): default | reduce-overhead (CUDA graphs) | max-autotune | "
                   "max-autotune-no-cudagraphs")
    p.add_argument("--cuda-graph", action="store_true", help="capture the forward pass once "
                   "as a CUDA graph and time its replays (--device cuda)")
    p.add_argument("--dtype", default="fp32", help="fp32 | fp16 | bf16 (weights and inputs)")
    p.add_argument("--backend", default="torch", help="torch | onnxruntime")
    p.add_argument("--int8", action="store_true", help="post-training static int8")
    p.add_argument("--int8-backend", metavar="NAME",
                   help="PyTorch's int8 kernels: x86 (default) | fbgemm | onednn | qnnpack")
    p.add_argument("--calibration", metavar="DATA",
                   help="int8 calibration images, e.g. mnist:data/mnist (default: random)")
    p.add_argument("--device", default="cpu", help="cpu | cuda")
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--plot", metavar="PNG", help="latency against mult-adds")
    json_opt(p)
    p.set_defaults(func=cmd_bench)

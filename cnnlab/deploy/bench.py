"""Latency benchmarks: what a model costs on this machine, not what its mult-adds promise.

Ma et al. 2018 (ShuffleNet V2, Sec. 2 and Table 8) show that FLOPs are an indirect metric:
memory access cost, parallelism and the platform decide speed, so a model is judged by its
measured latency on the target device. :func:`bench` times one model under a configuration
(warm-up, N timed runs, median and spread, images/s); :func:`table8` lays several models out as
Table 8 does (mult-adds, MAC, params, latency) with the rank disagreement between mult-adds
and latency (Kendall's τ; 1 = same order).
"""

from __future__ import annotations

import contextlib
import copy
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn

BACKENDS = ("torch", "onnxruntime")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class Timing:
    model: str
    batch: int
    input_size: tuple[int, ...]
    config: str
    median_ms: float
    p10_ms: float
    p90_ms: float
    runs: int

    @property
    def images_per_s(self) -> float:
        return 1000.0 * self.batch / self.median_ms

    def to_dict(self) -> dict:
        return {**asdict(self), "input_size": list(self.input_size),
                "images_per_s": self.images_per_s}


def _quantile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    i = q * (len(xs) - 1)
    lo = int(i)
    return xs[lo] + (xs[min(lo + 1, len(xs) - 1)] - xs[lo]) * (i - lo)


def summarize(times_s: list[float]) -> tuple[float, float, float]:
    """(median, 10th, 90th percentile) in milliseconds."""
    ms = [1000 * t for t in times_s]
    return statistics.median(ms), _quantile(ms, 0.1), _quantile(ms, 0.9)


def alternate(runners: dict[str, callable], *, warmup: int = 3, runs: int = 20,
              sync=lambda: None, clock=time.perf_counter) -> dict[str, list[float]]:
    """Seconds per call of each runner, timed in turns (a, b, a, b, …) so that a slow spell
    of a shared machine hits every contender alike. ``clock=time.process_time`` counts this
    process's CPU time instead of wall time: on a crowded machine it leaves out the time
    other processes held the cores (single-threaded runs only)."""
    for fn in runners.values():
        for _ in range(warmup):
            fn()
    sync()
    times: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(runs):
        for k, fn in runners.items():
            t0 = clock()
            fn()
            sync()
            times[k].append(clock() - t0)
    return times


def check_device(device: str) -> torch.device:
    if str(device).split(":")[0] not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {device!r}; cpu or cuda")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: this machine has no CUDA device "
                         "(PyTorch sees none)")
    if dev.type == "cuda" and (dev.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"--device {device}: this machine has {torch.cuda.device_count()} "
                         "CUDA device(s)")
    return dev


def check_options(*, backend: str = "torch", int8: bool = False, device: str = "cpu",
                  compile: bool = False, int8_backend: str = "x86",
                  compile_mode: str | None = None, cuda_graph: bool = False,
                  dtype: str = "fp32") -> None:
    """Refuse combinations that cannot run before any model is built."""
    compile = compile or compile_mode is not None
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; one of {', '.join(BACKENDS)}")
    if int8 and str(device).split(":")[0] != "cpu":
        raise ValueError(f"int8: PyTorch has no quantized kernels on {device} "
                         "(x86/fbgemm int8 runs on the CPU)")
    if compile_mode is not None and compile_mode not in COMPILE_MODES:
        raise ValueError(f"unknown compile mode {compile_mode!r}; one of "
                         f"{', '.join(COMPILE_MODES)}")
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; one of {', '.join(DTYPES)}")
    dev = check_device(device)
    if int8:
        from cnnlab.deploy.quant import check_backend

        check_backend(int8_backend)
    if backend == "onnxruntime" and (compile or dev.type != "cpu"):
        raise ValueError("--backend onnxruntime runs on the CPU without --compile")
    if dtype != "fp32" and (int8 or backend != "torch"):
        raise ValueError(f"--dtype {dtype} runs on the torch backend without --int8")
    if cuda_graph and dev.type != "cuda":
        raise ValueError("--cuda-graph replays a captured CUDA graph: it needs --device cuda")
    if cuda_graph and compile:
        raise ValueError("--cuda-graph captures the eager model; for a compiled one use "
                         "--compile-mode reduce-overhead (CUDA graphs of the compiled code)")


def make_runner(model: nn.Module, input_size, batch: int, *, backend: str = "torch",
                channels_last: bool = False, fuse_bn: bool = False, compile: bool = False,
                int8: bool = False, device: str = "cpu", threads: int | None = None,
                calibration: torch.Tensor | None = None, workdir: str | None = None,
                int8_backend: str = "x86", compile_mode: str | None = None,
                cuda_graph: bool = False, dtype: str = "fp32"):
    """A zero-argument callable running one forward pass of ``model`` at ``batch`` under the
    configuration, and a note on what it runs (e.g. which ops int8 left in fp32).

    ``compile_mode`` is torch.compile's (``reduce-overhead`` replays the compiled code as CUDA
    graphs); ``cuda_graph`` captures the eager forward pass once and replays it, which takes
    the per-kernel launch and Python dispatch off the timed call; ``dtype`` casts weights and
    inputs (fp16 or bf16)."""
    compile = compile or compile_mode is not None
    check_options(backend=backend, int8=int8, device=device, compile=compile,
                  int8_backend=int8_backend, compile_mode=compile_mode,
                  cuda_graph=cuda_graph, dtype=dtype)
    dev = torch.device(device)
    model = model.eval()
    notes = []
    if fuse_bn and not int8:  # FX int8 folds BN itself
        from cnnlab.layers.fuse import fuse_bn as fold

        model = fold(model, tuple(input_size))
        notes.append(f"{len(model.fused_pairs)} BN folded")
    x = torch.randn((batch, *input_size), generator=torch.Generator().manual_seed(0))
    if int8:
        from cnnlab.deploy.quant import quantize_ptq, slow_depthwise

        slow = slow_depthwise(model) if int8_backend in ("x86", "fbgemm") else []
        calib = calibration if calibration is not None else torch.randn((8, *input_size))
        q = quantize_ptq(model, [calib], backend=int8_backend, input_size=tuple(input_size))
        model = q.model
        notes.append(q.summary() + ("" if calibration is not None
                                    else "; calibrated on random inputs (latency only)"))
        if slow and backend == "torch":
            notes.append(f"{len(slow)} depthwise conv(s) with channels not a multiple of 8 "
                         f"(e.g. {slow[0]}) take fbgemm's slow int8 path: try "
                         "--int8-backend onednn")
    if backend == "onnxruntime":
        run, rel = _ort_runner(model, input_size, x, threads, workdir, int8)
        if int8:
            notes.append(f"onnxruntime's int8 within {rel:.1e} of PyTorch's (max relative)")
        return run, "; ".join(notes)
    if dtype != "fp32":  # the caller's model keeps its weights
        model = copy.deepcopy(model)
    model = model.to(dev, DTYPES[dtype])
    x = x.to(dev, DTYPES[dtype])
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    if compile:
        model = compiled(model, compile_mode)
    if cuda_graph:
        return cuda_graph_replay(model, x), "; ".join(notes)

    def run():
        if int8:  # the kernels are the engine's at call time: contenders may differ
            torch.backends.quantized.engine = int8_backend
        with torch.inference_mode():
            return model(x)

    return run, "; ".join(notes)


def compiled(model: nn.Module, mode: str | None = None) -> nn.Module:
    """``torch.compile(model, mode=mode)``, with room for many compiled models in one process:
    every cnnlab model runs ``ConvNet.forward``, and dynamo keeps 8 compiled versions of one
    function by default (one per model instance); past that it would run the model eagerly,
    and a benchmark would time eager code under a "compile" label."""
    import torch._dynamo

    cfg = torch._dynamo.config
    cfg.cache_size_limit = max(cfg.cache_size_limit, 256)
    return torch.compile(model, mode=None if mode in (None, "default") else mode)


def cuda_graph_replay(model: nn.Module, x: torch.Tensor, warmup: int = 3):
    """``model(x)`` captured once as a CUDA graph; the returned callable replays it on the
    same input buffer and returns the graph's output tensor (PyTorch's recipe: warm up on a
    side stream, then capture)."""
    side = torch.cuda.Stream(x.device)
    side.wait_stream(torch.cuda.current_stream(x.device))
    with torch.no_grad(), torch.cuda.stream(side):
        for _ in range(warmup):  # cuDNN picks its algorithms outside the capture
            model(x)
    torch.cuda.current_stream(x.device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.no_grad(), torch.cuda.graph(graph):
        out = model(x)

    def replay():
        graph.replay()
        return out

    # the graph reads the weights and x where they lay at capture: they live while it does
    replay.captured = (model, x)

    return replay


# onnxruntime's int8 kernels round and requantize otherwise than PyTorch's: their outputs
# part by up to a few per cent after fifty layers (MobileNetV2: 6 % of the largest logit)
INT8_RTOL = 0.1


def _ort_runner(model, input_size, x, threads, workdir, int8=False):
    """The model exported and checked in onnxruntime (to 1e-4 relative; int8 to
    :data:`INT8_RTOL`), its runner and the difference found."""
    import onnxruntime as ort

    from cnnlab.deploy.export import export_onnx

    tmp = Path(workdir or tempfile.mkdtemp(prefix="cnnlab-bench-"))
    path = tmp / "model.onnx"
    report = export_onnx(model, path, tuple(input_size), rtol=INT8_RTOL if int8 else 1e-4)
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    feed = {"input": x.numpy()}
    return (lambda: sess.run(None, feed)), report["max_rel_diff"]


@contextlib.contextmanager
def num_threads(n: int | None):
    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def config_name(**opts) -> str:
    on = [k for k in ("channels_last", "fuse_bn", "compile", "cuda_graph", "int8")
          if opts.get(k) or (k == "compile" and opts.get("compile_mode"))]
    if opts.get("compile_mode") not in (None, "default"):
        on[on.index("compile")] = f"compile({opts['compile_mode']})"
    if opts.get("dtype", "fp32") != "fp32":
        on.append(opts["dtype"])
    return "+".join([opts.get("backend", "torch"), *on])


CHECKED = ("backend", "int8", "device", "compile", "int8_backend", "compile_mode", "cuda_graph",
           "dtype")


def bench(model: nn.Module | str, *, batches=(1,), input_size=None, threads: int | None = None,
          warmup: int = 3, runs: int = 20, **opts) -> list[Timing]:
    """Median and spread of ``runs`` timed forward passes (after ``warmup``) per batch size.

    ``opts``: ``backend`` (torch | onnxruntime), ``channels_last``, ``fuse_bn``, ``compile``,
    ``compile_mode``, ``cuda_graph``, ``dtype`` (fp32 | fp16 | bf16), ``int8``,
    ``int8_backend`` (x86 | fbgemm | onednn | qnnpack), ``device``, ``calibration``.
    Weights are random (latency does not depend on them)."""
    from cnnlab.models import create_model, model_info

    check_options(**{k: opts[k] for k in CHECKED if k in opts})
    name = model if isinstance(model, str) else getattr(model, "model_name",
                                                          type(model).__name__)
    if isinstance(model, str):
        input_size = tuple(input_size or model_info(model).input_size)
        model = create_model(model)
    elif input_size is None:
        raise ValueError("input_size is required for a module")
    sync = _sync(opts)
    out = []
    with num_threads(threads):
        for b in batches:
            run, note = make_runner(model, input_size, b, threads=threads, **opts)
            t = alternate({"m": run}, warmup=warmup, runs=runs, sync=sync)["m"]
            med, p10, p90 = summarize(t)
            cfg = config_name(**opts) + (f" ({note})" if note else "")
            out.append(Timing(name, b, tuple(input_size), cfg, med, p10, p90, runs))
    return out


def kendall_tau(a, b) -> float:
    """Kendall's τ-b between two sequences (ties counted as neither order)."""
    n = len(a)
    conc = disc = ties_a = ties_b = 0
    for i in range(n):
        for j in range(i + 1, n):
            da, db = a[i] - a[j], b[i] - b[j]
            if da == 0 and db == 0:
                continue
            if da == 0:
                ties_a += 1
            elif db == 0:
                ties_b += 1
            elif (da > 0) == (db > 0):
                conc += 1
            else:
                disc += 1
    denom = ((conc + disc + ties_a) * (conc + disc + ties_b)) ** 0.5
    return (conc - disc) / denom if denom else float("nan")


def table8(names, input_sizes=((3, 224, 224),), *, threads: int = 1, runs: int = 10,
           warmup: int = 2, batch: int = 1, **opts) -> dict:
    """ShuffleNet V2 Table 8's layout: per model and input size, mult-adds, memory access cost
    (MAC, elements), params and measured latency at ``batch`` (the paper: 1 on the ARM and
    CPU, 8 on the GPU); Kendall's τ between mult-adds and latency over the models at each
    input size. Models are timed in turns."""
    from cnnlab.models import create_model
    from cnnlab.profile import profile

    rows, taus = [], {}
    with num_threads(threads):
        for size in input_sizes:
            models = {n: create_model(n) for n in names}
            runners, profs = {}, {}
            for n, m in models.items():
                profs[n] = profile(n, tuple(size))
                runners[n], _ = make_runner(m, tuple(size), batch, threads=threads, **opts)
            times = alternate(runners, warmup=warmup, runs=runs, sync=_sync(opts))
            lat = {}
            for n in names:
                med, p10, p90 = summarize(times[n])
                p = profs[n]
                lat[n] = med
                rows.append({"model": n, "input_size": list(size), "macs": p.macs,
                             "memory_access": p.memory_access, "params": p.params,
                             "latency_ms": med, "p10_ms": p10, "p90_ms": p90})
            taus["x".join(map(str, size))] = kendall_tau([profs[n].macs for n in names],
                                                         [lat[n] for n in names])
    return {"rows": rows, "kendall_tau": taus, "threads": threads, "batch": batch,
            "config": config_name(**opts), "device": str(opts.get("device", "cpu"))}


def _sync(opts):
    """What makes a timed call wait for its device: CUDA kernels run asynchronously."""
    return torch.cuda.synchronize if torch.device(opts.get("device", "cpu")).type == "cuda" \
        else (lambda: None)

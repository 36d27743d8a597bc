"""Reports: Han et al. 2015's per-layer pruning table and the per-stage size table.

Pruning table (Han 2015, Tables 1–2): ``Weights`` and ``FLOP`` (2 × the profiler's
mult-adds) of the dense layer, ``Act%`` the measured density of the layer's *input*
activations on real data (the fraction of multiplications whose input is non-zero),
``Weights%`` kept, ``FLOP% = Weights% × Act%`` and the mult-adds that remain. The total row
weighs Act% by the layers' dense FLOP, and its FLOP% is kept FLOP over dense FLOP.

Han's printed Act% column is, on its numbers, the density of each layer's *output* after its
ReLU (the logits of fc3 / fc2 read 100 %, and his FLOP% of a layer is its Weights% times the
previous row's Act%): his row i corresponds to our row i + 1 where no pooling sits between.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from cnnlab.compress.prune import prunable_layers


@torch.no_grad()
def activation_density(model: nn.Module, x: torch.Tensor, batch_size: int = 500
                       ) -> dict[str, tuple[float, float]]:
    """``(input density, output density)`` of every prunable layer over the batch ``x``: the
    fraction of non-zero elements the layer reads and writes (its output before any
    activation module that follows it)."""
    layers = prunable_layers(model)
    count = {ly.label: [0, 0, 0, 0] for ly in layers}  # nz in, numel in, nz out, numel out

    def hook_for(label):
        def hook(module, args, out):
            c = count[label]
            c[0] += int(torch.count_nonzero(args[0]))
            c[1] += args[0].numel()
            c[2] += int(torch.count_nonzero(out))
            c[3] += out.numel()
        return hook

    handles = [ly.module.register_forward_hook(hook_for(ly.label)) for ly in layers]
    dev = next(model.parameters()).device  # the trainer may have left it on a GPU
    was = model.training
    model.eval()
    try:
        for i in range(0, len(x), batch_size):
            model(x[i:i + batch_size].to(dev))
    finally:
        model.train(was)
        for h in handles:
            h.remove()
    return {k: (c[0] / c[1] if c[1] else 1.0, c[2] / c[3] if c[3] else 1.0)
            for k, c in count.items()}


def layer_macs(model: nn.Module, input_size) -> dict[str, int]:
    """Mult-adds of every prunable layer at ``input_size`` (C, H, W), from the profiler."""
    from cnnlab.profile import profile

    p = profile(model, tuple(input_size))
    by_name: dict[str, int] = {}
    for r in p.rows:
        by_name[r.name] = by_name.get(r.name, 0) + r.macs
    return {ly.label: by_name.get(ly.name, 0) for ly in prunable_layers(model)}


def pruning_table(model: nn.Module, input_size, x: torch.Tensor | None = None) -> list[dict]:
    """One row per prunable layer plus a ``Total`` row (see the module docstring).

    Weights% counts the layer's non-zero weights; without ``x`` Act% is taken as 100 %.
    """
    macs = layer_macs(model, input_size)
    act = activation_density(model, x) if x is not None else {}
    rows = []
    for ly in prunable_layers(model):
        w = ly.module.weight.detach()
        kept = int(torch.count_nonzero(w))
        wp = kept / w.numel()
        a, o = act.get(ly.label, (1.0, None))
        rows.append({"layer": ly.label, "module": ly.name, "weights": w.numel(), "kept": kept,
                     "flop": 2 * macs[ly.label], "act_pct": 100 * a,
                     "out_act_pct": None if o is None else 100 * o, "weights_pct": 100 * wp,
                     "flop_pct": 100 * wp * a, "macs": macs[ly.label],
                     "macs_kept": round(macs[ly.label] * wp * a)})
    flop = sum(r["flop"] for r in rows)
    weights = sum(r["weights"] for r in rows)
    kept = sum(r["kept"] for r in rows)
    macs_kept = sum(r["macs_kept"] for r in rows)
    rows.append({"layer": "Total", "module": "", "weights": weights, "kept": kept, "flop": flop,
                 "act_pct": sum(r["act_pct"] * r["flop"] for r in rows) / max(flop, 1),
                 "out_act_pct": None,
                 "weights_pct": 100 * kept / max(weights, 1),
                 "flop_pct": 100 * 2 * macs_kept / max(flop, 1), "macs": flop // 2,
                 "macs_kept": macs_kept})
    return rows


def _k(n: int) -> str:
    return f"{n / 1000:.1f}K" if n < 10_000 else f"{n / 1000:.0f}K"


def format_pruning_table(rows: list[dict]) -> str:
    from cnnlab.table import render

    body = [[r["layer"], r["module"], _k(r["weights"]), _k(r["flop"]), f"{r['act_pct']:.0f}%",
             f"{r['weights_pct']:.1f}%", f"{r['flop_pct']:.1f}%", f"{r['macs_kept']:,}"]
            for r in rows]
    return render(body, ["Layer", "module", "Weights", "FLOP", "Act%", "Weights%", "FLOP%",
                         "mult-adds kept"], right={2, 3, 4, 5, 6, 7})


def format_stage_table(result: dict) -> str:
    """The per-layer bytes of each stage and the stage summary with accuracies."""
    from cnnlab.table import render

    layers = result["layers"]
    body = [[r["layer"], f"{r['weights']:,}", f"{r['kept_pct']:.1f}%", r["bits"],
             r["dense_bytes"], r["csr_bytes"], r["pruned_bytes"], r["quantized_bytes"],
             r["huffman_bytes"], f"{r['dense_bytes'] / max(r['huffman_bytes'], 1):.1f}x",
             f"{r['rate']:.1f}"] for r in layers]
    t = result["totals"]
    body.append(["other tensors", "", "", "fp32", t["other_bytes"], t["other_bytes"],
                 t["other_bytes"], t["other_bytes"], t["other_bytes"], "", ""])
    body.append(["Total", f"{t['weights']:,}", f"{t['kept_pct']:.1f}%", "", t["dense_bytes"],
                 t["csr_bytes"], t["pruned_bytes"], t["quantized_bytes"], t["huffman_bytes"],
                 f"{t['dense_bytes'] / max(t['huffman_bytes'], 1):.1f}x", ""])
    top = render(body, ["layer", "weights", "kept", "bits", "dense B", "CSR B", "pruned B",
                        "quant B", "Huffman B", "ratio", "r (Eq.1)"],
                 right=set(range(1, 11)))
    stages = [[s["stage"], s["bytes"], f"{s['ratio']:.1f}x",
               "" if s.get("top1") is None else f"{s['top1']:.2f}%", s.get("note", "")]
              for s in result["stages"]]
    bottom = render(stages, ["stage", "bytes", "ratio", "val top1", ""], right={1, 2, 3})
    return top + "\n\n" + bottom

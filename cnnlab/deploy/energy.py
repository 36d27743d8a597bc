"""Energy per inference from Horowitz's 45 nm table (M. Horowitz, "Computing's energy problem
(and what we can do about it)", ISSCC 2014, Fig. 1.1.9), the table Han et al. use to argue for
Deep Compression (ICLR 2016, Sec. 1 and Fig. 1 of EIE): a 32-bit DRAM access costs 640 pJ, two
orders of magnitude more than an SRAM read (5 pJ) or a multiply-add.

The model, stated so that the figure can be read for what it is:

* arithmetic: every multiply-add costs one multiply and one add at the precision; element
  operations (BN, ReLU, pooling, sums) one add each;
* weights: every stored weight bit is read once per inference: from on-chip SRAM when the
  model's whole weight storage fits in ``sram_bytes``, from DRAM otherwise (the 32-bit access
  energy scaled by bits / 32: a compressed weight costs what its stored bits cost);
* activations: each layer reads its inputs and writes its outputs once, in on-chip SRAM.

Batch 1; no reuse of weights across a batch, no zero skipping (a pruned model's dense
multiply-adds are counted: EIE's sparse savings are not claimed here).
"""

from __future__ import annotations

from dataclasses import dataclass

# pJ per operation at 45 nm, 0.9 V (Horowitz 2014): (multiply, add) per precision.
# int8 multiplies accumulate in 32-bit integers, as fbgemm and every int8 engine do.
OPS_PJ = {
    "fp32": (3.7, 0.9),
    "fp16": (1.1, 0.4),
    "int8": (0.2, 0.1),
}
BITS = {"fp32": 32, "fp16": 16, "int8": 8}
SRAM_PJ_32 = 5.0  # 32-bit read from an on-chip SRAM (Han et al.'s figure from the same table)
DRAM_PJ_32 = 640.0  # 32-bit DRAM access


@dataclass
class LayerEnergy:
    name: str
    macs: int
    other_ops: int
    weight_bits: int
    activation_elems: int
    compute_pj: float
    weight_pj: float
    activation_pj: float

    @property
    def total_pj(self) -> float:
        return self.compute_pj + self.weight_pj + self.activation_pj


@dataclass
class EnergyReport:
    model: str
    precision: str
    sram_bytes: int
    weight_bytes: int
    weights_in_sram: bool
    layers: list[LayerEnergy]

    @property
    def compute_pj(self) -> float:
        return sum(ly.compute_pj for ly in self.layers)

    @property
    def weight_pj(self) -> float:
        return sum(ly.weight_pj for ly in self.layers)

    @property
    def activation_pj(self) -> float:
        return sum(ly.activation_pj for ly in self.layers)

    @property
    def total_pj(self) -> float:
        return sum(ly.total_pj for ly in self.layers)

    def to_dict(self) -> dict:
        return {"model": self.model, "precision": self.precision,
                "sram_bytes": self.sram_bytes, "weight_bytes": self.weight_bytes,
                "weights_in": "SRAM" if self.weights_in_sram else "DRAM",
                "total_pj": self.total_pj, "compute_pj": self.compute_pj,
                "weight_pj": self.weight_pj, "activation_pj": self.activation_pj,
                "assumptions": ASSUMPTIONS,
                "layers": [{**ly.__dict__, "total_pj": ly.total_pj} for ly in self.layers]}


ASSUMPTIONS = ("Horowitz ISSCC 2014, 45 nm: fp32 mult 3.7 pJ, add 0.9; fp16 1.1/0.4; int8 "
               "mult 0.2 + 32-bit add 0.1; 32-bit SRAM read 5 pJ, DRAM 640 pJ (scaled by "
               "bits/32). Each weight read once per inference, from SRAM if all weights fit, "
               "else DRAM; activations read+written once in SRAM; batch 1, dense arithmetic.")


def parse_bytes(text: str | int) -> int:
    """``"512KiB"``, ``"2MiB"``, ``"64KB"``, ``"1000"`` → bytes."""
    if isinstance(text, int):
        return text
    units = {"": 1, "B": 1, "KB": 1000, "MB": 10**6, "GB": 10**9, "KIB": 1024,
             "MIB": 1024**2, "GIB": 1024**3, "K": 1024, "M": 1024**2}
    s = str(text).strip().upper().replace(" ", "")
    num = s.rstrip("KMGIB")
    unit = s[len(num):]
    try:
        value = float(num)
    except ValueError:
        value = -1.0
    if unit not in units or value < 0:
        raise ValueError(f"cannot read memory size {text!r} (e.g. 512KiB, 2MiB)")
    return int(value * units[unit])


def energy(prof, *, sram_bytes: int | str = 512 * 1024, precision: str = "fp32",
           weight_bytes: dict[str, int] | None = None) -> EnergyReport:
    """Energy per inference of a :class:`cnnlab.profile.Profile` (batch 1).

    ``weight_bytes`` (module name → stored bytes) replaces ``params × bits / 8`` for the
    layers it names, e.g. the record sizes of a ``.dcz`` file (see :func:`energy_of_dcz`).
    """
    if precision not in OPS_PJ:
        raise ValueError(f"unknown precision {precision!r}; one of {', '.join(OPS_PJ)}")
    sram = parse_bytes(sram_bytes)
    if prof.batch_size != 1:
        raise ValueError("energy is per inference: profile at batch size 1")
    bits = BITS[precision]
    mult, add = OPS_PJ[precision]
    merged: dict[str, dict] = {}
    for r in prof.rows:
        d = merged.setdefault(r.name, {"macs": 0, "other": 0, "params": 0, "act": 0})
        d["macs"] += r.macs
        d["other"] += r.other_ops
        d["params"] += r.params
        d["act"] += r.input_elems + r.output_elems
    stored = {name: (weight_bytes or {}).get(name, d["params"] * bits // 8) * 8
              for name, d in merged.items()}
    total_bytes = sum(stored.values()) // 8
    fits = total_bytes <= sram
    per_bit = (SRAM_PJ_32 if fits else DRAM_PJ_32) / 32
    layers = [LayerEnergy(name, d["macs"], d["other"], stored[name], d["act"],
                          compute_pj=d["macs"] * (mult + add) + d["other"] * add,
                          weight_pj=stored[name] * per_bit,
                          activation_pj=d["act"] * bits * SRAM_PJ_32 / 32)
              for name, d in merged.items()]
    return EnergyReport(prof.model, precision, sram, total_bytes, fits, layers)


def dcz_weight_bytes(dcz) -> dict[str, int]:
    """Stored bytes per module of a ``.dcz`` file (its records, as written)."""
    out: dict[str, int] = {}
    for t in dcz.tensors:
        mod = t.name.rpartition(".")[0]
        if t.name.endswith(("running_mean", "running_var", "num_batches_tracked")):
            continue  # statistics, folded away at inference
        out[mod] = out.get(mod, 0) + t.size
    return out


def energy_of_dcz(path, *, sram_bytes: int | str = 512 * 1024) -> EnergyReport:
    """Energy per inference of the model in a ``.dcz`` file: weights cost the bytes the file
    stores them in (Huffman-coded cluster indices, relative positions, codebooks), so a
    model compressed below ``sram_bytes`` reads them from SRAM — Deep Compression's point."""
    from cnnlab.compress import fileformat as ff
    from cnnlab.compress.pipeline import _check_against_model
    from cnnlab.models import model_info
    from cnnlab.profile import build_on_meta, profile

    f = ff.read(path)
    _check_against_model(f)
    model = build_on_meta(f.model, **f.config)
    size = getattr(model, "default_input_size", None) or model_info(f.model).input_size
    prof = profile(model, size)
    prof.model = f.model
    return energy(prof, sram_bytes=sram_bytes, weight_bytes=dcz_weight_bytes(f))

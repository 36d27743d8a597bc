"""``cnnlab verify``: every registered model's counts against its paper's figures.

For each reference row the model is built on meta at the paper's input size and profiled.
A figure passes when the count rounds to what the paper printed (see
:class:`cnnlab.registry.Figure`). Where the registry records an exact count because the
paper's own figure is off, the exact count is what is checked, and the paper's figure and the
reason are shown beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

from cnnlab.models import list_models, model_info
from cnnlab.profile.profiler import profile
from cnnlab.registry import Figure


@dataclass
class Check:
    model: str
    config: str
    table: str
    metric: str  # "params", "macs" or "size_mib"
    paper: Figure
    measured: float
    expected: Figure  # what is checked: the paper's figure, or the recorded exact count
    note: str

    @property
    def ok(self) -> bool:
        return self.expected.matches(self.measured)

    @property
    def delta_pct(self) -> float:
        return 100 * (self.measured - self.paper.value) / self.paper.value

    def to_dict(self) -> dict:
        return {"model": self.model, "config": self.config, "table": self.table,
                "metric": self.metric, "paper": self.paper.text, "paper_value": self.paper.value,
                "measured": self.measured, "checked_against": self.expected.text,
                "delta_pct": round(self.delta_pct, 3), "ok": self.ok, "note": self.note}


def _config(ref, default_input) -> str:
    parts = [f"{k}={v}" for k, v in ref.kwargs.items()]
    if tuple(ref.input_size) != tuple(default_input):
        parts.append("x".join(map(str, ref.input_size[1:])))
    return " ".join(parts) or "default"


def verify(pattern: str | None = None) -> list[Check]:
    checks: list[Check] = []
    for name in list_models(pattern):
        info = model_info(name)
        for ref in info.references:
            prof = profile(name, ref.input_size, **ref.kwargs)
            cfg = _config(ref, info.input_size)
            measured = {"params": prof.params, "macs": prof.macs,
                        "size_mib": prof.model_size(32) / 2**20}
            for metric, value in measured.items():
                paper = getattr(ref, metric)
                if paper is None:
                    continue
                exact = getattr(ref, f"exact_{metric}")
                checks.append(Check(name, cfg, ref.table, metric, paper, value,
                                    exact or paper, ref.note if exact else ""))
    return checks

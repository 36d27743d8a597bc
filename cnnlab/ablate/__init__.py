"""The decks' design claims re-run as experiments (``cnnlab ablate``): an ablation is a set
of named variants, a task and the paper's figures; :func:`run_ablation` trains each variant
per seed and says whether the claim holds at this scale."""

from cnnlab.ablate import studies as _studies  # noqa: F401  (registers the studies)
from cnnlab.ablate.core import (
    Ablation,
    Claim,
    Task,
    Variant,
    get_ablation,
    list_ablations,
    plan_iters,
    register_ablation,
    run_ablation,
    table,
    verdicts,
    write_results,
)

__all__ = ["Ablation", "Claim", "Task", "Variant", "get_ablation", "list_ablations",
           "plan_iters", "register_ablation", "run_ablation", "table", "verdicts",
           "write_results"]

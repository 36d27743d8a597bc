"""Whether a tensor is being traced rather than computed."""

from __future__ import annotations

import torch


def is_symbolic(x) -> bool:
    """True under ``torch.fx.symbolic_trace`` (``x`` is a Proxy), ``torch.jit.trace`` or
    ``torch.compile``: a Python check on ``x``'s shape would break the trace or be frozen into
    the graph, so argument checks and shape-dependent branches step aside."""
    return isinstance(x, torch.fx.Proxy) or torch.jit.is_tracing() or \
        torch.compiler.is_compiling()

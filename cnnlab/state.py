"""Named tensors against what a model expects: the one check behind loading checkpoints and
``.dcz`` files (and anything else that loads weights)."""

from __future__ import annotations

from collections.abc import Mapping


def mismatch(want: Mapping, got: Mapping, *, dtype: bool = False, show: int = 3) -> str:
    """'' when ``got`` has exactly ``want``'s names and shapes (and dtypes, with ``dtype``);
    otherwise one line, e.g. ``missing: a, b, c (+2 more); shape mismatch: fc.weight (10, 84)
    vs (7, 84)`` (``got``'s then ``want``'s). Values need only ``.shape`` (and ``.dtype``)."""
    def desc(v):
        return f"{tuple(v.shape)} {v.dtype}" if dtype else f"{tuple(v.shape)}"

    wrong = [f"{k} {desc(got[k])} vs {desc(v)}" for k, v in want.items()
             if k in got and desc(got[k]) != desc(v)]
    parts = []
    for label, items in (("missing", [k for k in want if k not in got]),
                         ("unexpected", [k for k in got if k not in want]),
                         ("shape/dtype mismatch" if dtype else "shape mismatch", wrong)):
        if items:
            more = f" (+{len(items) - show} more)" if len(items) > show else ""
            parts.append(f"{label}: {', '.join(items[:show])}{more}")
    return "; ".join(parts)

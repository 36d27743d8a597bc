"""Aligned text tables and human-readable numbers for the CLI."""

from __future__ import annotations


def human(n: float, unit: str = "") -> str:
    """1234567 → '1.23M'."""
    for div, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            return f"{n / div:.2f}{suffix}{unit}"
    return f"{n:g}{unit}" if isinstance(n, float) else f"{n}{unit}"


def fmt_shape(shape) -> str:
    if shape and isinstance(shape[0], (tuple, list)):
        return " ".join(fmt_shape(s) for s in shape)
    return "x".join(str(s) for s in shape)


def render(rows: list[list], header: list[str], right: set[int] | None = None) -> str:
    """Columns aligned; ``right`` holds the indices of right-aligned (numeric) columns."""
    right = right if right is not None else {i for i, v in enumerate(rows[0] if rows else [])
                                             if isinstance(v, (int, float))}
    cells = [[str(h) for h in header]] + [[_cell(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = []
    for j, r in enumerate(cells):
        lines.append("  ".join(c.rjust(w) if i in right else c.ljust(w)
                               for i, (c, w) in enumerate(zip(r, widths))).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v)

"""``cnnlab report``: one static HTML page of the zoo and the ablations that were run — no
server, no network; plots are inline SVG (and the ablations' PNGs inline as data URLs)."""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path

from cnnlab.io import atomic_path

_SCRIPT = """
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message)));
function sortTable(th) {
  const table = th.closest('table'), body = table.tBodies[0];
  const col = Array.from(th.parentNode.children).indexOf(th);
  const asc = th.dataset.order !== 'asc';
  Array.from(th.parentNode.children).forEach(h => delete h.dataset.order);
  th.dataset.order = asc ? 'asc' : 'desc';
  const key = tr => {
    const td = tr.children[col], v = td.dataset.v;
    return v === undefined ? td.textContent.trim().toLowerCase() : parseFloat(v);
  };
  const rows = Array.from(body.rows);
  rows.sort((a, b) => {
    const x = key(a), y = key(b);
    const nx = typeof x === 'number' && isNaN(x), ny = typeof y === 'number' && isNaN(y);
    if (nx || ny) return nx - ny;  // missing values last
    return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
  });
  rows.forEach(r => body.appendChild(r));
}
document.querySelectorAll('table.sortable th').forEach(
  th => th.addEventListener('click', () => sortTable(th)));
// "#click=N" clicks the N-th column header once loaded (for headless checks and links)
const m = location.hash.match(/click=(\\d+)/);
if (m) document.querySelectorAll('table.sortable th')[+m[1]].click();
document.body.dataset.ready = window.__errors.length ? 'errors' : 'ok';
"""

_STYLE = """
body{font:14px system-ui,sans-serif;margin:24px;color:#222;background:#fff}
h1{font-size:22px}h2{font-size:18px;margin-top:32px}
table{border-collapse:collapse;margin:8px 0}td,th{padding:3px 8px;border-bottom:1px solid #ddd}
th{cursor:pointer;background:#eef3f8;text-align:left}td.n{text-align:right}
.ok{color:#197a2e}.bad{color:#b3261e}.note{color:#666;font-size:12px}
"""


def _esc(x) -> str:
    return html.escape(str(x))


def _human(n) -> str:
    if n is None:
        return ""
    for div, s in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            return f"{n / div:.2f}{s}"
    return f"{n:g}" if isinstance(n, float) else str(n)


def _num(v, text=None) -> str:
    dv = "NaN" if v is None else repr(float(v))
    return f'<td class="n" data-v="{dv}">{_esc(text if text is not None else _human(v))}</td>'


# --- data -----------------------------------------------------------------------------------
def zoo_rows(pattern: str | None = None) -> list[dict]:
    """One row per registered model: counts at its default input beside its paper's."""
    from cnnlab.models import list_models, model_info
    from cnnlab.profile import profile

    rows = []
    for name in list_models(pattern):
        info = model_info(name)
        row = {"model": name, "paper": f"{info.paper.authors} {info.paper.year}"
               if info.paper else "", "input": "x".join(map(str, info.input_size))}
        try:
            p = profile(name)
            row.update(params=p.params, macs=p.macs, mac=p.memory_access)
        except (ValueError, RuntimeError) as e:
            row.update(params=None, macs=None, mac=None, error=str(e).splitlines()[0])
        ref = next((r for r in info.references if tuple(r.input_size) == info.input_size
                    and not r.kwargs), None)
        if ref is not None:
            row["table"] = ref.table
            row["top1"] = ref.top1
            for key in ("params", "macs"):
                fig, exact = getattr(ref, key), getattr(ref, f"exact_{key}")
                if fig is not None and row.get(key) is not None:
                    row[f"paper_{key}"] = fig.text
                    # a count that differs from the print for a recorded reason (the
                    # reference's exact_* and note) is a match, marked as noted
                    row[f"{key}_match"] = "yes" if fig.matches(row[key]) else (
                        "noted" if exact is not None and exact.matches(row[key]) else "no")
        rows.append(row)
    return rows


def read_ablations(folder: str | Path | None) -> list[dict]:
    """Every ``cnnlab ablate`` result (``NAME.json``, with its ``NAME.png``) in ``folder``."""
    if folder is None:
        return []
    out = []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            d = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(d, dict) and "ablation" in d and "variants" in d:
            png = path.with_suffix(".png")
            d["_png"] = png.read_bytes() if png.is_file() else None
            out.append(d)
    return out


# --- pictures -------------------------------------------------------------------------------
def scatter_svg(rows: list[dict], width=640, height=380) -> str:
    """Paper top-1 against counted mult-adds (log x), MobileNet Fig. 5 / EfficientNet Fig. 1
    in kind; only models whose paper gives a top-1 can be placed."""
    pts = [r for r in rows if r.get("top1") is not None and r.get("macs")]
    if not pts:
        return '<p class="note">no model here has a paper top-1 to place.</p>'
    xs = [math.log10(r["macs"]) for r in pts]
    ys = [r["top1"] for r in pts]
    x0, x1 = min(xs) - 0.1, max(xs) + 0.1
    y0, y1 = min(ys) - 2, max(ys) + 2
    pad = 50

    def px(x):
        return pad + (x - x0) / (x1 - x0) * (width - 2 * pad)

    def py(y):
        return height - pad - (y - y0) / (y1 - y0) * (height - 2 * pad)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img" aria-label="top-1 vs mult-adds">',
             f'<rect width="{width}" height="{height}" fill="#fff"/>',
             f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" '
             'stroke="#444"/>',
             f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#444"/>',
             f'<text x="{width / 2}" y="{height - 12}" text-anchor="middle" font-size="12">'
             'mult-adds (log scale)</text>',
             f'<text x="14" y="{height / 2}" font-size="12" transform="rotate(-90 14 '
             f'{height / 2})" text-anchor="middle">paper top-1 (%)</text>']
    for e in range(math.ceil(x0), math.floor(x1) + 1):
        parts.append(f'<text x="{px(e):.1f}" y="{height - pad + 16}" font-size="11" '
                     f'text-anchor="middle">{_human(10 ** e)}</text>')
    step = 1 if y1 - y0 <= 12 else 5 if y1 - y0 <= 60 else 10
    for t in range(math.ceil(y0 / step) * step, math.floor(y1) + 1, step):
        parts.append(f'<text x="{pad - 6}" y="{py(t) + 4:.1f}" font-size="11" '
                     f'text-anchor="end">{t}</text>')
    for r, x, y in zip(pts, xs, ys):
        parts.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="4" fill="#4a7fb5">'
                     f'<title>{_esc(r["model"])}: {y} %, {_human(r["macs"])}</title></circle>'
                     f'<text x="{px(x) + 5:.1f}" y="{py(y) - 5:.1f}" font-size="10">'
                     f'{_esc(r["model"])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def layer_bars_svg(model: str, depth: int = 2, width=640) -> str:
    """Mult-adds per layer group (module names cut to ``depth``) of ``model``, as bars."""
    from cnnlab.profile import profile

    groups = [g for g in profile(model).grouped(depth) if g["macs"]]
    if not groups:
        return f'<p class="note">{_esc(model)} has no layers with mult-adds.</p>'
    top = max(g["macs"] for g in groups)
    bar, label = 14, 170
    height = bar * len(groups) + 10
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img" aria-label="per-layer mult-adds of {_esc(model)}">']
    for i, g in enumerate(groups):
        w = (width - label - 70) * g["macs"] / top
        y = 5 + i * bar
        parts.append(f'<text x="{label - 4}" y="{y + 10}" font-size="10" text-anchor="end">'
                     f'{_esc(g["name"] or "(model)")}</text><rect x="{label}" y="{y}" '
                     f'width="{w:.1f}" height="{bar - 3}" fill="#e08a3c"/><text '
                     f'x="{label + w + 4:.1f}" y="{y + 10}" font-size="10">'
                     f'{_human(g["macs"])}</text>')
    parts.append("</svg>")
    return "".join(parts)


# --- the page -------------------------------------------------------------------------------
def _match(r: dict, key: str) -> str:
    if f"paper_{key}" not in r:
        return "<td></td>"
    ok = r[f"{key}_match"]
    mark = {"yes": "✓", "noted": "✓ (noted)", "no": "✗"}[ok]
    return (f'<td class="{"bad" if ok == "no" else "ok"}">{_esc(r[f"paper_{key}"])} '
            f'{mark}</td>')


def _zoo_table(rows: list[dict]) -> str:
    head = ["model", "paper", "input", "params", "mult-adds", "MAC", "paper params",
            "paper mult-adds", "paper top-1"]
    out = ['<table class="sortable" id="zoo"><thead><tr>'
           + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>"]
    for r in rows:
        out.append(f'<tr><td>{_esc(r["model"])}</td><td>{_esc(r["paper"])}</td>'
                   f'<td>{_esc(r["input"])}</td>{_num(r["params"])}{_num(r["macs"])}'
                   f'{_num(r["mac"])}{_match(r, "params")}{_match(r, "macs")}'
                   f'{_num(r.get("top1"), r.get("top1") if r.get("top1") is not None else "")}'
                   "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _ablation_html(d: dict) -> str:
    by_steps = d.get("target_error") is not None
    out = [f'<h3>{_esc(d["title"])}</h3><p class="note">{_esc(d["source"])}; data '
           f'{_esc(d["data"])}, {_esc(d.get("train_images") or "all")} training images, '
           f'{d["iters"]} steps, {d["seeds"]} seed(s)</p>',
           '<table class="sortable"><thead><tr><th>variant</th><th>params</th>'
           '<th>mult-adds</th><th>latency ms</th>'
           f'<th>{"steps to target" if by_steps else "accuracy %"}</th><th>paper</th></tr>'
           '</thead><tbody>']
    for v in d["variants"]:
        if by_steps:
            m, txt = v["steps_mean"], f'{v["steps_mean"]:.0f} ± {v["steps_std"]:.0f}'
        else:
            m = 100 * v["acc_mean"]
            txt = f'{m:.2f} ± {100 * v["acc_std"]:.2f}'
        lat = _num(v["latency_ms"], f'{v["latency_ms"]:.2f}')
        out.append(f'<tr><td>{_esc(v["variant"])}</td>{_num(v["params"])}{_num(v["macs"])}'
                   f'{lat}{_num(m, txt)}<td>{_esc(v["paper"])}</td></tr>')
    out.append("</tbody></table><ul>")
    for c in d.get("verdicts", []):
        cls = "ok" if c["verdict"] == "reproduces" else "bad"
        out.append(f'<li>{_esc(c["claim"])}: <b class="{cls}">{_esc(c["verdict"])}</b></li>')
    out.append("</ul>")
    if d.get("_png"):
        b64 = base64.b64encode(d["_png"]).decode()
        out.append(f'<img alt="{_esc(d["ablation"])}" src="data:image/png;base64,{b64}">')
    return "".join(out)


def build_page(rows: list[dict], ablations: list[dict], layers_model: str | None) -> str:
    parts = ["<!doctype html><html lang=en><head><meta charset=utf-8>",
             "<title>cnnlab report</title>", f"<style>{_STYLE}</style></head><body>",
             "<h1>cnnlab report</h1>",
             f"<h2>The zoo ({len(rows)} models; click a header to sort)</h2>",
             '<p class="note">counts at each model\'s default input, batch 1; MAC = memory '
             "access in elements (ShuffleNet V2); ✓/✗: the paper's printed figure "
             "matches the count within its printed digits (✓ noted: the difference is "
             "explained in the model's reference note).</p>", _zoo_table(rows),
             "<h2>Accuracy vs. mult-adds</h2>", scatter_svg(rows)]
    if layers_model:
        parts += [f"<h2>Per-layer mult-adds: {_esc(layers_model)}</h2>",
                  layer_bars_svg(layers_model)]
    parts.append("<h2>Ablations</h2>")
    if ablations:
        parts += [_ablation_html(d) for d in ablations]
    else:
        parts.append('<p class="note">no ablation results given (cnnlab ablate NAME --out '
                     "DIR, then cnnlab report --results DIR).</p>")
    parts.append(f"<script>{_SCRIPT}</script></body></html>")
    return "".join(parts)


def write_report(out: str | Path, pattern: str | None = None, results: str | Path | None = None,
                 layers_model: str | None = None) -> Path:
    """Write ``out/index.html`` and return its path."""
    rows = zoo_rows(pattern)
    page = build_page(rows, read_ablations(results), layers_model)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "index.html"
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path

"""`cnnlab checklist`: rows whose evidence the library holds are marked, the totals recounted."""

import pytest

from cnnlab.checklist import EVIDENCE, Evidence, code, mark, model, recipe
from cnnlab.cli import main

TEXT = """## Deck 001
| ID | Item | Lines | Status | Evidence / gap |
|---|---|---|---|---|
| 001-19 | Test: 4 scales x 144 crops | 342 | MISSING | TTA modes are flip/10crop |
| 001-20 | Something | 1 | DONE | already done |
| 001-21 | Something else | 2 | MISSING | nothing |
| 002-01 | Other deck | 3 | PARTIAL | half |

## Totals
| deck | DONE | PARTIAL | MISSING |
|---|---|---|---|
| 001 | 1 | 0 | 2 |
| 002 | 0 | 1 | 0 |
| **all (4)** | **1** | **1** | **2** |
"""


def test_mark_sets_passing_rows_and_recounts():
    evidence = {
        "001-19": EVIDENCE["001-19"],
        "001-20": Evidence("PARTIAL", "would lower it", (code("cnnlab.detect:nms"),)),
        "001-21": Evidence("DONE", "a missing model", (model("no_such_net"),)),
        "002-01": Evidence("DONE", "recipe", (recipe("squeezenet", lr=0.04),)),
    }
    res = mark(TEXT, evidence=evidence)
    assert res.marked == ["001-19", "002-01"]
    assert res.refused == {"001-20": "already DONE; the evidence here shows PARTIAL",
                           "001-21": "model no_such_net is not registered"}
    lines = res.text.splitlines()
    assert lines[3].startswith("| 001-19 | Test: 4 scales x 144 crops | 342 | DONE | eval --tta")
    assert "| 001 | 2 | 0 | 1 |" in lines and "| 002 | 1 | 0 | 0 |" in lines
    assert "| **all (4)** | **3** | **0** | **1** |" in lines
    again = mark(res.text, evidence=evidence)
    assert again.marked == [] and again.unchanged == ["001-19", "002-01"]
    assert again.text == res.text
    with pytest.raises(ValueError, match="no evidence or no row for 001-99"):
        mark(TEXT, ["001-99"], evidence=evidence)
    assert recipe("squeezenet", lr=0.1)() == "recipe squeezenet differs in lr"


def test_cli_writes_in_place_unless_dry_run(tmp_path, capsys):
    path = tmp_path / "c.md"
    path.write_text(TEXT)
    assert main(["checklist", str(path), "--only", "001-19", "--dry-run"]) == 0
    assert path.read_text() == TEXT and "would change" in capsys.readouterr().out
    assert main(["checklist", str(path), "--only", "001-19"]) == 0
    assert "| 001-19 | Test: 4 scales x 144 crops | 342 | DONE |" in path.read_text()
    assert "| **all (4)** | **2** | **1** | **1** |" in path.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.md"]  # no temp file left


def test_every_evidence_row_holds_in_this_tree():
    missing = {k: why for k, e in EVIDENCE.items() for why in [next(
        (w for w in (c() for c in e.checks) if w), None)] if why}
    assert missing == {}

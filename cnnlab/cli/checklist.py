"""``cnnlab checklist FILE``: mark the deck checklist's rows the library now covers."""

from __future__ import annotations

from cnnlab.cli.common import CliError, emit, input_file, json_opt, output_file


def cmd_checklist(args) -> int:
    from cnnlab.checklist import mark
    from cnnlab.io import write_bytes_atomic

    src = input_file(args.file, "checklist")
    out = None if args.dry_run else output_file(args.output or args.file)
    try:
        text = src.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CliError(f"{args.file} is not a UTF-8 text file") from None
    res = mark(text, args.only)
    if out is not None and res.text != text:
        write_bytes_atomic(out, res.text.encode("utf-8"))
    if args.json:
        emit({"marked": res.marked, "unchanged": res.unchanged, "refused": res.refused,
              "written": str(out) if out is not None and res.text != text else None})
        return 0
    for key in res.marked:
        print(f"{key}  marked")
    for key in res.unchanged:
        print(f"{key}  already shows its evidence")
    for key, why in res.refused.items():
        print(f"{key}  not marked: {why}")
    verb = "would change" if out is None else "wrote"
    print(f"{len(res.marked)} row(s) {'changed' if res.marked else 'unchanged'}; "
          f"{verb} {args.output or args.file}" if res.text != text else "nothing to change")
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("checklist", help="mark the deck checklist's rows whose evidence the "
                       "library holds (DECK-CHECKLIST.md), and recount its totals")
    p.add_argument("file", help="the checklist (Markdown table rows | ID | ... |)")
    p.add_argument("--only", nargs="+", metavar="ID", help="just these rows, e.g. 001-19")
    p.add_argument("-o", "--output", help="write here instead of FILE")
    p.add_argument("--dry-run", action="store_true", help="report, write nothing")
    json_opt(p)
    p.set_defaults(func=cmd_checklist)

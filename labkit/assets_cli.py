"""``labkit assets`` lists the real artefacts; ``labkit assets fetch`` gets what is missing."""

from __future__ import annotations

import argparse

from labkit import assets


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "assets", help="list or fetch the real models and vocabularies",
        description="List each artefact with its origin, size and state, or fetch the missing ones.",
    )
    parser.add_argument("action", nargs="?", choices=["list", "fetch", "verify"], default="list",
                        help="list (default): show the table; fetch: get what is missing or corrupt; "
                             "verify: hash every file again")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"artefacts to act on (default all): {', '.join(assets.ARTEFACTS)}")
    parser.add_argument("--force", action="store_true", help="with fetch: fetch again even if valid")
    parser.set_defaults(handler=run)


def _table(statuses: list[assets.Status]) -> str:
    rows = [("NAME", "SIZE", "STATE", "SOURCE")]
    for s in statuses:
        count = len(s.artefact.files)
        if s.ok:
            state = "verified" if count == 1 else f"verified ({count} files)"
        elif s.present == 0:
            state = "missing"
        else:
            state = f"{s.verified}/{count} verified"
        rows.append((s.artefact.name, f"{s.artefact.size / 1e6:.1f} MB", state, s.artefact.source))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}" for r in rows)


def run(args: argparse.Namespace) -> int:
    unknown = [n for n in args.names if n not in assets.ARTEFACTS]
    if unknown:
        print(f"labkit assets: unknown artefact(s) {', '.join(unknown)}; "
              f"known: {', '.join(assets.ARTEFACTS)}")
        return 2
    names = args.names or list(assets.ARTEFACTS)

    if args.action == "fetch":
        statuses = assets.fetch(names, force=args.force)
    else:
        statuses = [assets.verify(n, full=args.action == "verify") for n in names]

    print(f"cache: {assets.cache_dir()}")
    print(_table(statuses))
    broken = [s for s in statuses if not s.ok]
    for s in broken:
        for problem in s.problems[:3]:
            print(f"  {s.artefact.name}: {problem}")
    if broken:
        print(f"Run `{assets.FETCH_COMMAND}` to get what is missing or replace what is corrupt.")
        return 1
    return 0

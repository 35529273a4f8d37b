"""The ``labkit`` command: one subcommand per area, each registered by its own module.

Each module in ``COMMAND_MODULES`` defines ``register(subparsers)``, which adds its subcommand and
sets ``handler`` (a function taking the parsed arguments and returning an exit code).

>>> main(["assets"])                                        # doctest: +SKIP
0
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from labkit.assets import AssetError

COMMAND_MODULES = [
    "labkit.assets_cli",
    "labkit.grading.cli",
    "labkit.quantize.cli",
    "labkit.serve.cli",
    "labkit.tokenize.cli",
    "labkit.databricks.cli",
    "labkit.costs.cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labkit",
        description="Tools of the course 'LLM Serving and Tokenization'.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log DEBUG messages too")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), run the subcommand and return its exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.handler(args) or 0)
    except AssetError as error:
        # A missing model is the most common first-day problem: one line with the fix, no traceback.
        print(f"labkit: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except (OSError, ValueError, RuntimeError, OverflowError) as error:
        # Bad paths, ports and values reach here from deep inside a command. Users get one line,
        # and `labkit -v` re-raises so the traceback is there for debugging labkit itself.
        if args.verbose:
            raise
        print(f"labkit {args.command}: {type(error).__name__}: {error} "
              "(run with `labkit -v` for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

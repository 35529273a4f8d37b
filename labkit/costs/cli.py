"""``labkit cost``: prices, token counts, workload costs and the managed vs self-hosted break-even.

    labkit cost prices
    labkit cost count "How many tokens is this?" --model databricks-meta-llama-3-3-70b-instruct
    labkit cost workload --requests 100000 --input-tokens 500 --output-tokens 200
    labkit cost break-even --model databricks-meta-llama-3-1-8b-instruct --usd-per-hour 1.2 \\
        --output-tokens-per-second 65 --prompt-tokens-per-second 600 --input-tokens 500 --output-tokens 200
"""

from __future__ import annotations

import argparse
import functools
import sys

from labkit.costs import catalog, counting, pricing


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "cost", help="token counts, pay-per-token prices and self-hosting break-even",
        description="Count tokens per model, price requests and workloads from the catalog, and "
                    "compare pay-per-token with a self-hosted machine.")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    prices = actions.add_parser("prices", help="list the price catalog with sources and dates")
    prices.add_argument("--active", action="store_true", help="leave out retired models")
    prices.set_defaults(handler=run_prices)

    count = actions.add_parser("count", help="count the tokens of a text for several models")
    count.add_argument("text", nargs="?", help="the text (default: read standard input)")
    count.add_argument("--model", action="append", metavar="NAME",
                       help="catalog endpoint or tokenizer name; repeat for several "
                            "(default: every chat model in the catalog)")
    count.set_defaults(handler=run_count)

    workload = actions.add_parser("workload", help="monthly pay-per-token cost of a workload")
    workload.add_argument("--requests", type=float, required=True, help="requests per month")
    workload.add_argument("--input-tokens", type=float, required=True, help="prompt tokens per request")
    workload.add_argument("--output-tokens", type=float, required=True, help="reply tokens per request")
    workload.add_argument("--model", action="append", metavar="NAME",
                          help="catalog endpoint; repeat for several (default: every chat model)")
    workload.set_defaults(handler=run_workload)

    point = actions.add_parser("break-even", help="volume where a self-hosted machine pays off")
    point.add_argument("--model", required=True, help="catalog endpoint to compare with")
    point.add_argument("--usd-per-hour", type=float, required=True, help="machine price, $ per hour")
    point.add_argument("--output-tokens-per-second", type=float, required=True,
                       help="measured generation throughput of the machine, tokens per second")
    point.add_argument("--prompt-tokens-per-second", type=float, required=True,
                       help="measured prompt-processing throughput of the machine, tokens per second")
    point.add_argument("--input-tokens", type=float, required=True, help="prompt tokens per request")
    point.add_argument("--output-tokens", type=float, required=True, help="reply tokens per request")
    point.set_defaults(handler=run_break_even)


def _reporting_errors(handler):
    """Turn an unknown model or an invalid number into one line on stderr and exit code 2."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except (KeyError, ValueError) as error:
            message = error.args[0] if isinstance(error, KeyError) and error.args else error
            print(f"labkit cost: {message}", file=sys.stderr)
            return 2

    return run


def _table(rows: list[tuple]) -> str:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip()
                     for row in rows)


def _models(names: list[str] | None) -> list[catalog.Price]:
    if not names:
        return catalog.chat_models()
    return [catalog.get_price(name) for name in names]


@_reporting_errors
def run_prices(args: argparse.Namespace) -> int:
    rows = [("ENDPOINT", "PROVIDER", "STATUS", "$/1M IN", "$/1M OUT", "DBU/1M IN", "DBU/1M OUT", "AS OF")]
    for p in catalog.load_catalog():
        if args.active and p.status == "retired":
            continue
        rows.append((p.endpoint, p.provider, p.status, f"{p.input_usd_per_1m:.2f}",
                     f"{p.output_usd_per_1m:.2f}", f"{p.input_dbu_per_1m:g}",
                     f"{p.output_dbu_per_1m:g}", p.as_of))
    print(_table(rows))
    print(f"\n$ per DBU: {catalog.load_catalog()[0].usd_per_dbu}. Source: {catalog.load_catalog()[0].source}.")
    return 0


@_reporting_errors
def run_count(args: argparse.Namespace) -> int:
    text = args.text if args.text is not None else sys.stdin.read()
    names = args.model or [p.endpoint for p in catalog.chat_models()]
    rows = [("MODEL", "TOKENS", "COUNTED WITH", "KIND")]
    for name in names:
        result = counting.count_tokens(text, name)
        rows.append((name, result.tokens, result.tokenizer, "exact" if result.exact else "estimate"))
    print(_table(rows))
    return 0


@_reporting_errors
def run_workload(args: argparse.Namespace) -> int:
    workload = pricing.Workload("cli", args.requests, args.input_tokens, args.output_tokens)
    rows = [("MODEL", "$ PER REQUEST", "$ PER MONTH")]
    for price in _models(args.model):
        rows.append((price.endpoint,
                     f"{pricing.request_cost(price, args.input_tokens, args.output_tokens):.6f}",
                     f"{pricing.workload_cost(price, workload):,.2f}"))
    print(_table(rows))
    return 0


@_reporting_errors
def run_break_even(args: argparse.Namespace) -> int:
    price = catalog.get_price(args.model)
    machine = pricing.Machine("machine", args.usd_per_hour, args.output_tokens_per_second,
                              args.prompt_tokens_per_second)
    point = pricing.break_even(price, machine, input_tokens=args.input_tokens,
                               output_tokens=args.output_tokens)
    print(f"pay-per-token ({price.endpoint}): ${point.pay_per_token_per_request:.6f} per request")
    print(f"machine at full load:  ${point.self_hosted_per_request_at_capacity:.6f} per request, "
          f"{point.capacity_per_month:,.0f} requests per month")
    print(f"break-even: {point.requests_per_month:,.0f} requests per month")
    if not point.reachable:
        print("one machine cannot reach the break-even volume: at this throughput pay-per-token "
              "is cheaper at every volume")
    return 0

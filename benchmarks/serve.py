"""Serving: labkit's server against llama.cpp called directly and llama-cpp-python's own server.

    .venv/bin/python benchmarks/serve.py                       # SmolLM2, 128 tokens, 8 clients
    .venv/bin/python benchmarks/serve.py --model gemma3-270m --repeat 5 --json serve.json

All three run the same GGUF with 2 threads, greedy, with the end-of-text tokens biased away so
every stream has the requested length:

- ``direct``: ``llama_cpp.Llama.create_completion(stream=True)`` in this process (the anchor for
  single-stream speed);
- ``labkit``: ``labkit serve`` in its own process;
- ``llama_cpp.server``: ``python -m llama_cpp.server --n_threads 2`` in its own process (the anchor
  for concurrency; it needs the ``[server]`` extra of llama-cpp-python).

It prints single-stream decode tokens/s and time to first token (medians of ``--repeat`` runs,
systems alternating), then aggregate tokens/s of *completed* streams and the share of streams
that completed with ``--clients`` concurrent clients, and the ratios the targets are stated in:
labkit/direct single-stream >= 0.95, labkit/llama_cpp.server single-stream >= 1.0, labkit /
llama_cpp.server aggregate >= 2, and 100% of labkit's streams complete.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys

from labkit import assets
from labkit.models import load_model
from labkit.serve.background import free_port, server_process, serve_in_subprocess
from labkit.serve.llama import LlamaModel
from labkit.serve.loadtest import load_test, stream_direct

PROMPT = "Once upon a time"
THREADS = 2


def end_of_text_bias(alias: str) -> dict[int, float]:
    """Bias every end-of-generation id the vocabulary names to -100, so streams run to max_tokens."""
    special = LlamaModel.load(alias, vocab_only=True).special
    return {token: -100.0 for token in {special.eos, special.eot} if token >= 0}


def measure_direct(alias: str, max_tokens: int, repeat: int, bias: dict[int, float]) -> list:
    llm = load_model(alias, n_ctx=2048, n_threads=THREADS)
    stream_direct(llm, PROMPT, max_tokens=8, logit_bias=bias)  # warm-up
    results = [stream_direct(llm, PROMPT, max_tokens=max_tokens, logit_bias=bias) for _ in range(repeat)]
    del llm
    gc.collect()
    return results


def measure_server(base_url: str, model: str, max_tokens: int, repeat: int, clients: int,
                   concurrent_tokens: int, bias: dict[int, float]) -> tuple[list, object]:
    body = {"model": model, "prompt": PROMPT, "temperature": 0,
            "logit_bias": {str(k): v for k, v in bias.items()}}
    asyncio.run(load_test(base_url, {**body, "max_tokens": 8}, 1))  # warm-up
    singles = [asyncio.run(load_test(base_url, {**body, "max_tokens": max_tokens}, 1)).streams[0]
               for _ in range(repeat)]
    concurrent = asyncio.run(load_test(base_url, {**body, "max_tokens": concurrent_tokens}, clients))
    return singles, concurrent


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2", choices=list(assets.MODELS),
                        help="course model to serve (default smollm2)")
    parser.add_argument("--tokens", type=int, default=128, help="tokens per single stream (default 128)")
    parser.add_argument("--repeat", type=int, default=3, help="single-stream runs per system (default 3)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--concurrent-tokens", type=int, default=64,
                        help="tokens per stream in the concurrent run (default 64)")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    path = assets.model_path(args.model)
    bias = end_of_text_bias(args.model)
    rows = {}

    print(f"direct: llama_cpp.Llama on {path.name}, {THREADS} threads", flush=True)
    direct = measure_direct(args.model, args.tokens, args.repeat, bias)
    rows["direct"] = {"decode": median(r.decode_rate for r in direct),
                      "ttft": median(r.time_to_first_token for r in direct)}

    print("labkit: labkit serve in a subprocess", flush=True)
    with serve_in_subprocess(models={args.model: args.model},
                             extra_args=["--threads", str(THREADS), "--n-parallel", str(max(8, args.clients)),
                                         "--embedding-model", args.model]) as base_url:
        singles, concurrent = measure_server(base_url, args.model, args.tokens, args.repeat, args.clients,
                                             args.concurrent_tokens, bias)
    rows["labkit"] = {"decode": median(r.decode_rate for r in singles),
                      "ttft": median(r.time_to_first_token for r in singles), "load": concurrent}

    print("llama_cpp.server: python -m llama_cpp.server in a subprocess", flush=True)
    port = free_port()
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(path), "--model_alias", args.model,
               "--host", "127.0.0.1", "--port", str(port), "--n_threads", str(THREADS),
               "--n_threads_batch", str(THREADS), "--n_ctx", "2048"]
    with server_process(command, f"http://127.0.0.1:{port}", ready_path="/v1/models"):
        singles, concurrent = measure_server(f"http://127.0.0.1:{port}", args.model, args.tokens, args.repeat,
                                             args.clients, args.concurrent_tokens, bias)
    rows["llama_cpp.server"] = {"decode": median(r.decode_rate for r in singles),
                                "ttft": median(r.time_to_first_token for r in singles), "load": concurrent}

    print()
    print(f"model {args.model}, {THREADS} threads, greedy; single stream: {args.tokens} tokens, "
          f"median of {args.repeat}; concurrent: {args.clients} clients x {args.concurrent_tokens} tokens")
    print(f"{'system':<18} {'decode tok/s':>12} {'TTFT ms':>8} {'aggregate tok/s':>16} {'complete':>9} "
          f"{'median TTFT ms':>15}")
    for name, row in rows.items():
        load = row.get("load")
        aggregate = f"{load.aggregate_tokens_per_second:16.1f}" if load else f"{'-':>16}"
        complete = f"{load.completion_rate:9.0%}" if load else f"{'-':>9}"
        load_ttft = f"{load.median_time_to_first_token * 1000:15.0f}" if load and load.median_time_to_first_token else f"{'-':>15}"
        print(f"{name:<18} {row['decode']:12.1f} {row['ttft'] * 1000:8.0f} {aggregate} {complete} {load_ttft}")

    labkit, lcp = rows["labkit"], rows["llama_cpp.server"]
    ratios = {
        "single-stream labkit / direct (target >= 0.95)": labkit["decode"] / rows["direct"]["decode"],
        "single-stream labkit / llama_cpp.server (target >= 1.0)": labkit["decode"] / lcp["decode"],
        f"aggregate at {args.clients} clients labkit / llama_cpp.server (target >= 2)":
            labkit["load"].aggregate_tokens_per_second / max(lcp["load"].aggregate_tokens_per_second, 1e-9),
    }
    print()
    for name, value in ratios.items():
        print(f"{name}: {value:.2f}")
    print(f"labkit streams complete: {labkit['load'].completion_rate:.0%} (target 100%); "
          f"llama_cpp.server: {lcp['load'].completion_rate:.0%}")

    if args.json:
        serialisable = {name: {k: (v if k != "load" else {"aggregate": v.aggregate_tokens_per_second,
                                                          "completion_rate": v.completion_rate,
                                                          "median_ttft": v.median_time_to_first_token})
                               for k, v in row.items()} for name, row in rows.items()}
        with open(args.json, "w") as out:
            json.dump({"model": args.model, "rows": serialisable, "ratios": ratios}, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``labkit serve``: start the OpenAI-compatible server in the foreground.

>>> main(["serve", "--port", "8000", "--model", "smollm2"])               # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import logging
import os

from pydantic import ValidationError

from labkit.serve.settings import DEFAULT_MODELS, ServeSettings

log = logging.getLogger(__name__)

API_KEY_VARIABLE = "LABKIT_API_KEY"


def register(subparsers: argparse._SubParsersAction) -> None:
    defaults = ServeSettings()
    parser = subparsers.add_parser(
        "serve", help="serve the course models over an OpenAI-compatible HTTP API",
        description="Serve GGUF models over /v1/completions, /v1/chat/completions, /v1/embeddings, "
                    "/v1/models, /health and /metrics, decoding concurrent requests together.")

    parser.add_argument("--host", default=defaults.host,
                        help=f"address to bind (default {defaults.host}; 0.0.0.0 exposes the server "
                             "to the network)")
    parser.add_argument("--port", type=int, default=defaults.port, help=f"TCP port (default {defaults.port})")

    parser.add_argument("--model", action="append", metavar="ID[=ALIAS_OR_PATH]", dest="models",
                        help="serve a model under ID, from a course alias or a GGUF path; repeat for "
                             f"several (default: {', '.join(DEFAULT_MODELS)})")
    parser.add_argument("--embedding-model", action="append", metavar="ID", dest="embedding_models",
                        help="served model id that also serves /v1/embeddings (default: smollm2 "
                             "when served, else none)")

    parser.add_argument("--n-parallel", type=int, default=defaults.n_parallel,
                        help=f"sequences decoded together per model (default {defaults.n_parallel})")
    parser.add_argument("--n-ctx", type=int, default=defaults.n_ctx,
                        help=f"context of each sequence in tokens (default {defaults.n_ctx})")
    parser.add_argument("--threads", type=int, default=defaults.n_threads,
                        help=f"CPU threads per model (default {defaults.n_threads})")
    parser.add_argument("--max-queue", type=int, default=defaults.max_queue,
                        help=f"sequences that may wait before requests get 429 (default {defaults.max_queue})")

    parser.add_argument("--default-max-tokens", type=int, default=defaults.default_max_tokens,
                        help=f"max_tokens for requests that omit it (default {defaults.default_max_tokens})")
    parser.add_argument("--max-body-bytes", type=int, default=defaults.max_body_bytes,
                        help=f"largest request body in bytes (default {defaults.max_body_bytes})")
    parser.add_argument("--api-key", default=None,
                        help=f"require 'Authorization: Bearer KEY' on /v1 routes (default: "
                             f"${API_KEY_VARIABLE} if set, else no key)")

    parser.set_defaults(handler=run)


def settings_from_args(args: argparse.Namespace) -> ServeSettings:
    """Build the one settings object from the command line and ``$LABKIT_API_KEY``."""
    models = dict(DEFAULT_MODELS)
    if args.models:
        models = {}
        for item in args.models:
            model_id, _, source = item.partition("=")
            models[model_id] = source or model_id
    embedding_models = args.embedding_models
    if embedding_models is None:
        embedding_models = ["smollm2"] if "smollm2" in models else []
    return ServeSettings(
        host=args.host, port=args.port, models=models, embedding_models=embedding_models,
        n_parallel=args.n_parallel, n_ctx=args.n_ctx, n_threads=args.threads, max_queue=args.max_queue,
        default_max_tokens=args.default_max_tokens, max_body_bytes=args.max_body_bytes,
        api_key=args.api_key or os.environ.get(API_KEY_VARIABLE) or None)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from labkit.serve.app import create_app
    from labkit.serve.engine import Engine

    try:
        settings = settings_from_args(args)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        print(f"labkit serve: invalid settings: {problems}")
        return 2

    print("labkit serve settings:\n  " + settings.describe().replace("\n", "\n  "), flush=True)
    with Engine(settings) as engine:
        config = uvicorn.Config(create_app(engine), host=settings.host, port=settings.port,
                                log_level="info", access_log=False, timeout_graceful_shutdown=5)
        uvicorn.Server(config).run()
    return 0

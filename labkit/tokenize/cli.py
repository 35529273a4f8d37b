"""``labkit tokenize``: show the tokens of a text, or train a BPE vocabulary on a corpus.

    labkit tokenize --vocab llama-bpe "Hello world"        ids and pieces, one token per line
    labkit tokenize --vocab gpt-2 --json "Hello world"     {"vocabulary": "gpt-2", "n_tokens": 2, "ids": [...]}
    echo "Hello" | labkit tokenize --vocab cl100k -        read the text from standard input
    labkit tokenize train corpus.txt --vocab-size 4096 --out pydoc-4k.json

The word ``train`` starts training only when ``--vocab`` is absent, so
``labkit tokenize --vocab gpt-2 train`` shows the tokens of the word "train".
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from labkit.assets import AssetError
from labkit.tokenize.errors import TokenizerError

EPILOG = """examples:
  labkit tokenize --vocab llama-bpe "Hello world"
  labkit tokenize --vocab gpt-2 --json "Hello world"
  labkit tokenize train corpus.txt --vocab-size 4096 --out my-vocab.json
vocabularies: gpt-2, llama-bpe, llama-spm, qwen2, phi-3, cl100k, gemma3-270m, smollm2, any other
llama.cpp vocabulary name, a GGUF path, or a saved vocabulary (.json)"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tokenize", help="show the tokens of a text, or train a BPE vocabulary",
        description="Show the token ids and pieces of TEXT in a vocabulary, or, with "
                    "'train CORPUS...', train a byte-level BPE vocabulary and save it.",
        usage="labkit tokenize --vocab NAME_OR_PATH [--json] [--allow-special] TEXT\n"
              "       labkit tokenize train CORPUS [CORPUS ...] --vocab-size N --out FILE [--pattern P]",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("words", nargs="*", metavar="TEXT",
                        help="text to tokenize (several words are joined by spaces; '-' reads standard input), "
                             "or 'train' followed by corpus files")
    parser.add_argument("--vocab", metavar="NAME_OR_PATH", help="vocabulary to tokenize with")
    parser.add_argument("--json", action="store_true", help="print the ids as JSON instead of a table")
    parser.add_argument("--allow-special", action="store_true",
                        help="turn special-token strings such as <|endoftext|> into their control ids "
                             "(default: encode them as ordinary text)")
    parser.add_argument("--vocab-size", type=int, metavar="N",
                        help="train: number of ids, counting 256 bytes, merges and 4 special tokens")
    parser.add_argument("--out", metavar="FILE", help="train: where to save the vocabulary (JSON)")
    parser.add_argument("--pattern", default="gpt2",
                        help="train: split pattern, 'gpt2' (default), 'cl100k' or a regular expression")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        if args.vocab is None and args.words[:1] == ["train"]:
            return _train(args)
        return _tokenize(args)
    except (TokenizerError, AssetError) as error:
        print(f"labkit tokenize: {error}", file=sys.stderr)
        return 2


def _tokenize(args: argparse.Namespace) -> int:
    if args.vocab is None:
        raise TokenizerError("name a vocabulary with --vocab (for example --vocab llama-bpe), "
                             "or train one with 'labkit tokenize train CORPUS ...'")
    if args.vocab_size is not None or args.out is not None:
        raise TokenizerError("--vocab-size and --out belong to 'labkit tokenize train'")
    if not args.words:
        raise TokenizerError("give the text to tokenize, or '-' to read it from standard input")
    text = sys.stdin.read() if args.words == ["-"] else " ".join(args.words)

    from labkit.tokenize.registry import load_vocabulary

    vocab = load_vocabulary(args.vocab)
    ids = vocab.encode(text, allowed_special="all" if args.allow_special else ())
    if args.json:
        print(json.dumps({"vocabulary": vocab.name, "n_tokens": len(ids), "ids": ids}))
        return 0

    # Invalid UTF-8 in argv or stdin arrives as lone surrogates (Python's surrogateescape), which
    # strict UTF-8 cannot encode; count the bytes that were given.
    try:
        n_bytes = len(text.encode("utf-8", "surrogateescape"))
    except UnicodeEncodeError:
        n_bytes = len(text.encode("utf-8", "surrogatepass"))
    print(f"{vocab.name}: {len(ids)} tokens, {n_bytes} bytes")
    width = len(str(max(ids, default=0)))
    for token_id, piece in zip(ids, vocab.token_pieces(ids)):
        # repr shows spaces, newlines and the \xNN bytes of partial characters unambiguously.
        print(f"{token_id:>{width}}  {piece!r}")
    return 0


def _train(args: argparse.Namespace) -> int:
    corpus = args.words[1:]
    if not corpus:
        raise TokenizerError("name at least one corpus file: labkit tokenize train CORPUS --vocab-size N --out FILE")
    if args.vocab_size is None or args.out is None:
        raise TokenizerError("training needs --vocab-size N and --out FILE")

    from labkit.tokenize.serialization import save_vocabulary
    from labkit.tokenize.train import train_bpe

    documents = []
    for name in corpus:
        path = Path(name)
        try:
            documents.append(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise TokenizerError(f"corpus file {name} does not exist") from None
        except UnicodeDecodeError as error:
            raise TokenizerError(f"corpus file {name} is not UTF-8 text (byte {error.start}); "
                                 "convert it to UTF-8 first") from None
        except OSError as error:
            raise TokenizerError(f"cannot read corpus file {name}: {error.strerror}") from None

    started = time.perf_counter()
    vocab = train_bpe(documents, args.vocab_size, pattern=args.pattern, name=Path(args.out).stem,
                      progress=sys.stderr.isatty())
    seconds = time.perf_counter() - started
    saved = save_vocabulary(vocab, args.out)
    size = sum(len(d.encode("utf-8")) for d in documents)
    print(f"trained {vocab.n_vocab} tokens on {size / 1e6:.2f} MB in {seconds:.1f} s; saved {saved}")
    return 0

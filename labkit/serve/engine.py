"""The serving engine: models loaded by alias, completions, chat, streams and embeddings, as asyncio calls.

The HTTP server (:mod:`labkit.serve.app`) is one client of this API. Anything else that needs
the course models in-process (a stand-in for a managed serving platform, a notebook) can use it
directly and gets the same defaults, checks, batching and logs.

>>> import asyncio
>>> from labkit.serve.engine import Engine
>>> with Engine() as engine:                                                # doctest: +SKIP
...     reply = asyncio.run(engine.chat("smollm2", [{"role": "user", "content": "Hi!"}],
...                                     max_tokens=8, seed=1))
>>> reply.text, reply.finish_reason, reply.usage                            # doctest: +SKIP
('Hello! How can I help you today?', 'stop', Usage(prompt_tokens=31, completion_tokens=9, total_tokens=40))

Streaming returns a :class:`Stream` only once the request is accepted, so every client mistake
(unknown model, prompt too long, queue full) raises a :class:`labkit.serve.errors.ServeError`
before the first byte of a response goes out:

>>> async def show(engine):                                                 # doctest: +SKIP
...     stream = await engine.stream_complete("gemma3-270m", "Once upon a time", max_tokens=8)
...     async for delta in stream:
...         print(delta.index, repr(delta.text), delta.finish_reason)
...     print(stream.usage)

API summary (stable):

- ``Engine(settings=None, **overrides)``: load every model of :class:`ServeSettings`; ``close()``
  or use as a context manager.
- ``engine.model_ids``, ``engine.model_info(model_id)`` -> :class:`ModelInfo`.
- ``await engine.complete(model, prompt, **params)`` and ``await engine.chat(model, messages,
  **params)`` -> :class:`Generation` (``.text``, ``.finish_reason``, ``.usage``, ``.choices``).
- ``await engine.stream_complete(...)`` / ``await engine.stream_chat(...)`` -> :class:`Stream`, an
  async iterator of :class:`Delta`; ``stream.usage`` once it is exhausted; ``await stream.aclose()``
  frees the sequences early.
- ``await engine.embed(model, inputs)`` -> :class:`Embeddings` (unit-length vectors, ``.usage``).
- ``engine.count_tokens(model, text)``.

``params`` are ``max_tokens, temperature, top_p, top_k, seed, stop, n, presence_penalty,
frequency_penalty, logit_bias, logprobs`` (the number of alternatives to list per token; None for
no logprobs) and, for completions only, ``echo``. None means the default of
:class:`labkit.serve.sampling.SamplingParams`; ``max_tokens=None`` means the room left in the
context, capped at ``settings.default_max_tokens``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncIterator

from labkit.serve.chat_template import ChatTemplate, chat_prompt_tokens, normalize_messages, template_for
from labkit.serve.embeddings import Embedder
from labkit.serve.errors import ContextLengthExceeded, InvalidRequest, ModelNotFound, ServeError
from labkit.serve.llama import LlamaContext, LlamaModel
from labkit.serve.metrics import ServeMetrics
from labkit.serve.sampling import TOP_LOGPROBS_MAX, SamplingParams, TokenSampler, draw_seed
from labkit.serve.scheduler import Scheduler, SequenceRequest, SequenceUpdate, TokenLogprob
from labkit.serve.settings import ServeSettings

log = logging.getLogger(__name__)

MAX_STOP_STRINGS = 4


@dataclass(frozen=True)
class Usage:
    """Token counts of one request, as in the OpenAI ``usage`` object."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@dataclass
class Choice:
    """One finished choice: its text, why it ended and, when asked, per-token logprobs."""

    index: int
    text: str
    finish_reason: str
    logprobs: list[TokenLogprob] | None = None


@dataclass
class Generation:
    """A finished request: every choice plus usage and timings."""

    id: str
    model: str
    created: int
    choices: list[Choice]
    usage: Usage
    time_to_first_token: float | None = None

    @property
    def text(self) -> str:
        """Text of the first choice."""
        return self.choices[0].text

    @property
    def finish_reason(self) -> str:
        """``"stop"`` or ``"length"`` for the first choice."""
        return self.choices[0].finish_reason


@dataclass
class Delta:
    """A piece of one choice in a stream; ``finish_reason`` is set on the choice's last piece."""

    index: int
    text: str = ""
    logprobs: list[TokenLogprob] | None = None
    finish_reason: str | None = None


@dataclass
class Embeddings:
    """Unit-length vectors, one per input, and the tokens they cost."""

    model: str
    vectors: list[list[float]]
    usage: Usage


@dataclass(frozen=True)
class ModelInfo:
    """Description of one served model id."""

    id: str
    path: Path
    architecture: str
    n_ctx: int
    n_vocab: int
    chat_template: str          # "gguf" or the fallback file used
    embeddings: bool
    created: int                # the GGUF's modification time, Unix seconds
    embedding_size: int = 0     # length of the vectors /v1/embeddings returns
    end_of_generation_ids: tuple[int, ...] = ()   # EOS and end-of-turn ids that stop a generation


@dataclass
class _ServedModel:
    info: ModelInfo
    model: LlamaModel
    context: LlamaContext
    scheduler: Scheduler
    template: ChatTemplate
    embedder: Embedder | None


@dataclass
class _Prepared:
    """A validated request: the prompts, one sequence request per choice, what to echo."""

    model: str
    kind: str                              # "completion" or "chat"
    prompt_tokens: int
    sequences: list[SequenceRequest]
    n: int = 1                             # choices per prompt
    echo_texts: list[str] | None = None
    logprobs: bool = False
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)


class Engine:
    """Load the served models and serve requests through one scheduler per model."""

    def __init__(self, settings: ServeSettings | None = None, **overrides):
        settings = settings or ServeSettings()
        if overrides:
            settings = settings.model_copy(update=overrides)
        self.settings = ServeSettings.model_validate(settings.model_dump())
        self.metrics = ServeMetrics()
        self._served: dict[str, _ServedModel] = {}
        try:
            for model_id, source in self.settings.models.items():
                self._served[model_id] = self._load(model_id, source)
        except BaseException:
            self.close()
            raise
        self.metrics.watch_schedulers({m: s.scheduler for m, s in self._served.items()})

    def _load(self, model_id: str, source: str) -> _ServedModel:
        settings = self.settings
        model = LlamaModel.load(source)
        context = model.new_context(n_ctx_per_sequence=settings.n_ctx, n_sequences=settings.n_parallel,
                                    n_batch=settings.n_batch, n_threads=settings.n_threads)
        scheduler = Scheduler(model, context, max_queue=settings.max_queue, name=model_id)
        template = template_for(model)
        embedder = None
        if model_id in settings.embedding_models:
            embedder = Embedder(model, n_ctx=settings.n_ctx, n_threads=settings.n_threads)
        info = ModelInfo(id=model_id, path=model.path, architecture=model.architecture,
                         n_ctx=context.n_ctx_per_sequence, n_vocab=model.n_vocab,
                         chat_template=template.origin, embeddings=embedder is not None,
                         created=int(model.path.stat().st_mtime), embedding_size=model.n_embd,
                         end_of_generation_ids=tuple(sorted({t for t in (model.special.eos, model.special.eot)
                                                             if t >= 0})))
        log.info("serving %s: %s (%s, context %d per sequence, %d sequences, chat template: %s)",
                 model_id, model.path.name, model.architecture, info.n_ctx, settings.n_parallel,
                 template.origin)
        return _ServedModel(info, model, context, scheduler, template, embedder)

    def close(self) -> None:
        """Stop the schedulers and free every context and model."""
        for served in self._served.values():
            served.scheduler.close()
            if served.embedder is not None:
                served.embedder.close()
            served.context.close()
            served.model.close()
        self._served.clear()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- models ----------------------------------------------------------------------------

    @property
    def model_ids(self) -> list[str]:
        """Ids of the served models, in settings order."""
        return list(self._served)

    def model_info(self, model: str) -> ModelInfo:
        """Return what is served under ``model``, or raise :class:`ModelNotFound`."""
        return self._get(model).info

    def _get(self, model: str) -> _ServedModel:
        served = self._served.get(model)
        if served is None:
            raise ModelNotFound(model, self.model_ids)
        return served

    def count_tokens(self, model: str, text: str) -> int:
        """Return the number of tokens ``text`` takes in ``model``'s vocabulary (no BOS)."""
        return len(self._get(model).model.tokenize(text))

    # -- generation ------------------------------------------------------------------------

    async def complete(self, model: str, prompt, **params) -> Generation:
        """Complete ``prompt`` (a string, token ids, or a list of either) and wait for the result."""
        return await (await self.stream_complete(model, prompt, **params)).collect()

    async def chat(self, model: str, messages: list[dict], **params) -> Generation:
        """Generate the assistant's reply to chat ``messages`` (``[{"role": ..., "content": ...}]``)."""
        return await (await self.stream_chat(model, messages, **params)).collect()

    async def stream_complete(self, model: str, prompt, *, echo: bool = False, **params) -> "Stream":
        """Accept a completion request and return its :class:`Stream` (see :meth:`complete`)."""
        served = self._get(model)
        prompts = self._completion_prompts(served, prompt)
        echo_texts = [text for text, _ in prompts] if echo else None
        return self._start(served, "completion", [tokens for _, tokens in prompts], echo_texts, **params)

    async def stream_chat(self, model: str, messages: list[dict], **params) -> "Stream":
        """Accept a chat request and return its :class:`Stream` (see :meth:`chat`)."""
        served = self._get(model)
        tokens = chat_prompt_tokens(served.model, served.template, normalize_messages(messages))
        return self._start(served, "chat", [tokens], None, **params)

    def _completion_prompts(self, served: _ServedModel, prompt) -> list[tuple[str, list[int]]]:
        """Return (text, token ids) for each prompt of a completion request."""
        model = served.model
        if isinstance(prompt, str):
            prompt = [prompt]
        elif isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
            prompt = [prompt]
        if not isinstance(prompt, list) or not prompt:
            raise InvalidRequest("prompt must be a string, a list of strings, a list of token ids "
                                 "or a list of such lists.", param="prompt")

        prompts = []
        for item in prompt:
            if isinstance(item, str):
                tokens = model.tokenize(item, add_bos=True)
                prompts.append((item, tokens))
            elif isinstance(item, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in item):
                bad = [t for t in item if not 0 <= t < model.n_vocab]
                if bad:
                    raise InvalidRequest(f"prompt contains token id {bad[0]}, but {served.info.id} has "
                                         f"ids 0 to {model.n_vocab - 1}.", param="prompt")
                prompts.append((model.detokenize(item), list(item)))
            else:
                raise InvalidRequest("each prompt must be a string or a list of token ids.", param="prompt")
            if not prompts[-1][1]:
                raise InvalidRequest("prompt is empty; send at least one character or token.",
                                     param="prompt")
        return prompts

    def _start(self, served: _ServedModel, kind: str, prompts: list[list[int]],
               echo_texts: list[str] | None, *, max_tokens: int | None = None,
               temperature: float | None = None, top_p: float | None = None, top_k: int | None = None,
               seed: int | None = None, stop=None, n: int | None = None,
               presence_penalty: float | None = None, frequency_penalty: float | None = None,
               logit_bias: dict | None = None, logprobs: int | None = None) -> "Stream":
        info = served.info
        for name, value, types in (("temperature", temperature, (int, float)), ("top_p", top_p, (int, float)),
                                   ("top_k", top_k, int), ("seed", seed, int), ("n", n, int),
                                   ("presence_penalty", presence_penalty, (int, float)),
                                   ("frequency_penalty", frequency_penalty, (int, float)),
                                   ("logprobs", logprobs, int)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, types)):
                raise InvalidRequest(f"{name} must be a number, not {type(value).__name__}.", param=name)
        n = 1 if n is None else n
        if not 1 <= n <= self.settings.max_n:
            raise InvalidRequest(f"n must be between 1 and {self.settings.max_n}; got {n}.", param="n")
        stop = _check_stop(stop)
        if logprobs is not None and not 0 <= logprobs <= TOP_LOGPROBS_MAX:
            raise InvalidRequest(f"logprobs must list between 0 and {TOP_LOGPROBS_MAX} alternatives; "
                                 f"got {logprobs}.", param="logprobs")

        budgets = [self._token_budget(info, len(tokens), max_tokens, allow_zero=echo_texts is not None,
                                      prompt_param="messages" if kind == "chat" else "prompt")
                   for tokens in prompts]

        defaults = SamplingParams()
        sampling = SamplingParams(
            temperature=defaults.temperature if temperature is None else temperature,
            top_p=defaults.top_p if top_p is None else top_p,
            top_k=defaults.top_k if top_k is None else top_k,
            presence_penalty=defaults.presence_penalty if presence_penalty is None else presence_penalty,
            frequency_penalty=defaults.frequency_penalty if frequency_penalty is None else frequency_penalty,
            logit_bias=_check_logit_bias(logit_bias),
            # Any integer is a valid seed; numpy's generators take only non-negative ones.
            seed=draw_seed() if seed is None else seed % 2**64,
        )
        sampling.validate(info.n_vocab)

        prepared = _Prepared(model=info.id, kind=kind, prompt_tokens=sum(len(t) for t in prompts),
                             sequences=[], n=n, echo_texts=echo_texts, logprobs=logprobs is not None)
        loop = asyncio.get_running_loop()
        # NOTE: each of the n choices prefills the prompt on its own. Copying the first choice's
        # KV cells (llama_memory_seq_cp) would save that work for long prompts.
        for p, tokens in enumerate(prompts):
            for j in range(n):
                index = p * n + j
                prepared.sequences.append(SequenceRequest(
                    prompt=tokens, max_tokens=budgets[p], stop=stop,
                    sampler=TokenSampler(sampling, choice_index=j),
                    deliver=_deliverer(loop, prepared.queue, index),
                    top_logprobs=logprobs,
                    prompt_logprobs=echo_texts is not None and logprobs is not None))
        served.scheduler.submit(prepared.sequences)
        return Stream(self, prepared)

    def _token_budget(self, info: ModelInfo, prompt_tokens: int, max_tokens: int | None,
                      *, allow_zero: bool, prompt_param: str) -> int:
        """Return how many tokens a sequence may generate, or raise when it cannot fit the context."""
        room = info.n_ctx - prompt_tokens
        if room < 1:
            raise ContextLengthExceeded(
                f"This model's maximum context length is {info.n_ctx} tokens, and the prompt has "
                f"{prompt_tokens} tokens, which leaves no room for a completion. Shorten the prompt.",
                param=prompt_param)
        if max_tokens is None:
            return min(self.settings.default_max_tokens, room)
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < (0 if allow_zero else 1):
            raise InvalidRequest(f"max_tokens must be an integer of at least {0 if allow_zero else 1}; "
                                 f"got {max_tokens!r}.", param="max_tokens")
        if max_tokens > room:
            raise ContextLengthExceeded(
                f"This model's maximum context length is {info.n_ctx} tokens. However, you requested "
                f"{prompt_tokens + max_tokens} tokens ({prompt_tokens} in the prompt, {max_tokens} "
                "for the completion). Reduce the prompt or max_tokens.", param="max_tokens")
        return max_tokens

    # -- embeddings ------------------------------------------------------------------------

    async def embed(self, model: str, inputs) -> Embeddings:
        """Return unit-length embeddings of ``inputs`` (a string, token ids, or a list of either)."""
        served = self._get(model)
        if served.embedder is None:
            embedding_models = [m for m, s in self._served.items() if s.embedder is not None]
            raise InvalidRequest(f"{model} does not serve embeddings; models that do: "
                                 f"{', '.join(embedding_models) or 'none'}.", param="model")
        if isinstance(inputs, str) or (isinstance(inputs, list) and inputs and all(isinstance(t, int) for t in inputs)):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs:
            raise InvalidRequest("input must be a string, a list of strings, a list of token ids "
                                 "or a list of such lists.", param="input")
        token_lists = []
        for item in inputs:
            if isinstance(item, str):
                tokens = served.model.tokenize(item, add_bos=True)
            elif isinstance(item, list) and all(isinstance(t, int) and 0 <= t < served.info.n_vocab for t in item):
                tokens = list(item)
            else:
                raise InvalidRequest("each input must be a string or a list of valid token ids.", param="input")
            if not tokens:
                raise InvalidRequest("input must not be empty.", param="input")
            if len(tokens) > served.embedder.n_ctx:
                raise ContextLengthExceeded(f"An input has {len(tokens)} tokens; at most "
                                            f"{served.embedder.n_ctx} fit. Shorten it.", param="input")
            token_lists.append(tokens)

        started = time.perf_counter()
        vectors = await asyncio.to_thread(served.embedder.embed, token_lists)
        prompt_tokens = sum(len(t) for t in token_lists)
        log.info("embeddings model=%s inputs=%d prompt_tokens=%d time=%.3fs", model, len(token_lists),
                 prompt_tokens, time.perf_counter() - started)
        self.metrics.embeddings_finished(model, prompt_tokens)
        return Embeddings(model=model, vectors=vectors.tolist(),
                          usage=Usage(prompt_tokens, 0, prompt_tokens))


def _deliverer(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue, index: int):
    """Return a callback that hands a scheduler update to the event loop (called from its thread)."""

    def deliver(update: SequenceUpdate) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, (index, update))

    return deliver


def _check_stop(stop) -> list[str]:
    if stop is None:
        return []
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise InvalidRequest("stop must be a string or a list of strings.", param="stop")
    if len(stop) > MAX_STOP_STRINGS:
        raise InvalidRequest(f"stop may hold at most {MAX_STOP_STRINGS} strings; got {len(stop)}.",
                             param="stop")
    return [s for s in stop if s]


def _check_logit_bias(logit_bias) -> dict[int, float]:
    if logit_bias is None:
        return {}
    if not isinstance(logit_bias, dict):
        raise InvalidRequest("logit_bias must map token ids to numbers.", param="logit_bias")
    checked = {}
    for key, value in logit_bias.items():
        try:
            token = int(key)
        except (TypeError, ValueError):
            raise InvalidRequest(f"logit_bias key {key!r} is not a token id.", param="logit_bias") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidRequest(f"logit_bias value for {key!r} must be a number.", param="logit_bias")
        checked[token] = float(value)
    return checked


class Stream:
    """An accepted request: iterate it for :class:`Delta` pieces; ``usage`` is set at the end.

    Leaving the iteration early (or calling :meth:`aclose`) cancels the request's sequences, which
    frees their KV cache cells at the scheduler's next step.
    """

    def __init__(self, engine: Engine, prepared: _Prepared):
        self.id = f"{'chatcmpl' if prepared.kind == 'chat' else 'cmpl'}-{uuid.uuid4().hex[:24]}"
        self.model = prepared.model
        self.created = int(time.time())
        self.n_choices = len(prepared.sequences)
        self.prompt_tokens = prepared.prompt_tokens
        self.usage: Usage | None = None
        self.finish_reasons: dict[int, str] = {}
        self.time_to_first_token: float | None = None
        self._engine = engine
        self._prepared = prepared
        self._started = time.perf_counter()
        self._iterating = False
        self._closed = False

    def __aiter__(self) -> AsyncIterator[Delta]:
        if self._iterating:
            raise RuntimeError("a Stream can be iterated only once")
        self._iterating = True
        return self._deltas()

    async def _deltas(self) -> AsyncIterator[Delta]:
        prepared = self._prepared
        completion_tokens = [0] * self.n_choices
        first_token_at = None
        echoed = [False] * self.n_choices
        try:
            while len(self.finish_reasons) < self.n_choices:
                index, update = await prepared.queue.get()
                if update.error is not None:
                    raise update.error
                if first_token_at is None and (update.completion_tokens or update.finish_reason):
                    first_token_at = time.perf_counter()
                    self.time_to_first_token = first_token_at - self._started
                completion_tokens[index] = update.completion_tokens

                text, logprobs = update.text, list(update.logprobs) if prepared.logprobs else None
                if prepared.echo_texts is not None:
                    # Echoed text comes first, so offsets of generated tokens move by its length,
                    # and the first piece of each choice carries the prompt and its logprobs.
                    echo = prepared.echo_texts[index // prepared.n]
                    for entry in logprobs or []:
                        entry.offset += len(echo)
                    if not echoed[index]:
                        text = echo + text
                        if logprobs is not None:
                            logprobs = _with_offsets(update.prompt_logprobs or []) + logprobs
                        echoed[index] = True
                if update.finish_reason is not None:
                    self.finish_reasons[index] = update.finish_reason
                yield Delta(index=index, text=text, logprobs=logprobs, finish_reason=update.finish_reason)
        finally:
            finished = time.perf_counter()
            if len(self.finish_reasons) < self.n_choices:
                self._cancel()
            total = sum(completion_tokens)
            self.usage = Usage(self.prompt_tokens, total, self.prompt_tokens + total)
            self._log(finished, first_token_at, total)

    def _cancel(self) -> None:
        for sequence in self._prepared.sequences:
            sequence.cancelled = True

    async def aclose(self) -> None:
        """Cancel whatever has not finished; safe to call more than once."""
        self._cancel()

    async def collect(self) -> Generation:
        """Read the whole stream and return it as one :class:`Generation`."""
        texts = [""] * self.n_choices
        logprobs: list[list[TokenLogprob] | None] = [None] * self.n_choices
        async for delta in self:
            texts[delta.index] += delta.text
            if delta.logprobs is not None:
                logprobs[delta.index] = (logprobs[delta.index] or []) + delta.logprobs
        choices = [Choice(index=i, text=texts[i], finish_reason=self.finish_reasons[i],
                          logprobs=logprobs[i] if self._prepared.logprobs else None)
                   for i in range(self.n_choices)]
        return Generation(id=self.id, model=self.model, created=self.created, choices=choices,
                          usage=self.usage, time_to_first_token=self.time_to_first_token)

    def _log(self, finished: float, first_token_at: float | None, completion_tokens: int) -> None:
        reasons = sorted(set(self.finish_reasons.values())) or ["cancelled"]
        if len(self.finish_reasons) < self.n_choices and self.finish_reasons:
            reasons.append("cancelled")
        ttft = None if first_token_at is None else first_token_at - self._started
        rate = None
        if first_token_at is not None and completion_tokens > self.n_choices and finished > first_token_at:
            # Decode speed after the first token of each choice, so it does not include prefill.
            rate = (completion_tokens - self.n_choices) / (finished - first_token_at)
        log.info("%s model=%s kind=%s prompt_tokens=%d completion_tokens=%d ttft=%s tokens/s=%s "
                 "finish_reason=%s", self.id, self.model, self._prepared.kind, self.prompt_tokens,
                 completion_tokens, "-" if ttft is None else f"{ttft:.3f}s",
                 "-" if rate is None else f"{rate:.1f}", ",".join(reasons))
        self._engine.metrics.request_finished(
            model=self.model, kind=self._prepared.kind, prompt_tokens=self.prompt_tokens,
            completion_tokens=completion_tokens, time_to_first_token=ttft, tokens_per_second=rate,
            finish_reason=",".join(reasons), duration=finished - self._started)


def _with_offsets(entries: list[TokenLogprob]) -> list[TokenLogprob]:
    """Set the character offsets of echoed prompt tokens from their texts."""
    offset = 0
    for entry in entries:
        entry.offset = offset
        offset += len(entry.token)
    return entries

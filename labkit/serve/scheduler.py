"""Continuous batching: one llama.cpp batch per step carries a token of every active sequence.

Each request choice is a *sequence* with its own id in the KV cache. A worker thread repeats one
step. It drops sequences whose client went away, which frees their cache cells, and admits
waiting sequences into free ids. It fills one batch with the last sampled token of every decoding
sequence plus prompt chunks of newly admitted ones and runs ``llama_decode`` once. Then it samples,
detokenizes and checks stop strings for every sequence that got logits. A request arriving mid-stream joins at the next step,
so no stream waits for another to end and none is interrupted.

>>> scheduler = Scheduler(model, context)                        # doctest: +SKIP
>>> scheduler.submit([SequenceRequest(prompt=[1, 2, 3], max_tokens=8, sampler=TokenSampler(
...     SamplingParams(temperature=0)), deliver=print)])         # doctest: +SKIP
SequenceUpdate(text=' Paris', ...)

With ``n_sequences=1`` the same class serves one sequence at a time: the readable baseline the
benchmark and tests compare batching against.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from labkit.serve.errors import EngineFailure, QueueFull
from labkit.serve.sampling import TokenSampler, log_softmax
from labkit.serve.stop import StopMatcher
from labkit.tokenize.incremental import IncrementalDecoder

log = logging.getLogger(__name__)

# Prompt rows whose logits are kept (echo with logprobs) cost n_vocab floats each, 1 MB per row
# for Gemma's 262,144-token vocabulary, so such prompts are fed in smaller chunks.
PROMPT_LOGPROB_CHUNK = 32


@dataclass
class TokenLogprob:
    """One token of a choice with its log-probability and the likeliest alternatives.

    ``logprob`` is None for the first prompt token, which nothing predicts. ``offset`` is the
    character position of the token's text in the choice's text. ``top`` lists (token text, token
    id, log-probability) of the alternatives, likeliest first.
    """

    token: str
    token_id: int
    bytes: bytes
    logprob: float | None
    top: list[tuple[str, int, float]] = field(default_factory=list)
    offset: int = 0


@dataclass
class SequenceUpdate:
    """The output of one step for one sequence, sent to the submitter's ``deliver`` callback."""

    text: str = ""
    logprobs: list[TokenLogprob] = field(default_factory=list)
    prompt_logprobs: list[TokenLogprob] | None = None
    finish_reason: str | None = None      # "stop" or "length" on the last update
    completion_tokens: int = 0            # running total for this sequence
    error: Exception | None = None


@dataclass
class SequenceRequest:
    """One sequence to generate: a prompt, a budget, a sampler, and where to send updates.

    ``top_logprobs`` is None for no logprobs, else how many alternatives to list per token.
    ``deliver`` is called from the worker thread and must not block; setting ``cancelled``
    from any thread frees the sequence at the next step.
    """

    prompt: list[int]
    max_tokens: int
    sampler: TokenSampler
    deliver: Callable[[SequenceUpdate], None]
    stop: list[str] = field(default_factory=list)
    top_logprobs: int | None = None
    prompt_logprobs: bool = False
    cancelled: bool = False


class _Sequence:
    """A request admitted into a sequence id: where it is in its prompt and its output."""

    def __init__(self, request: SequenceRequest, seq_id: int):
        self.request = request
        self.seq_id = seq_id
        self.prefilled = 0                  # prompt tokens already in the KV cache
        self.next_token: int | None = None  # sampled, not yet decoded
        self.completion_tokens = 0
        self.decoder = IncrementalDecoder()
        self.matcher = StopMatcher(request.stop)
        self.decoded_chars = 0              # characters decoded so far, released or held back
        self.held_logprobs: list[TokenLogprob] = []
        self.prompt_logprobs: list[TokenLogprob] = []
        self.prompt_logprobs_sent = False
        self.started = time.perf_counter()

    @property
    def position(self) -> int:
        return len(self.request.prompt) + self.completion_tokens


class Scheduler:
    """Decode every active sequence of one model together, one batch per step, in a worker thread."""

    def __init__(self, model, context, *, max_queue: int = 32, name: str | None = None):
        self.model = model
        self.context = context
        self.max_queue = max_queue
        self.name = name or model.path.stem
        self._free_ids = list(range(context.n_sequences))
        self._waiting: deque[SequenceRequest] = deque()
        self._active: list[_Sequence] = []
        self._condition = threading.Condition()
        self._running = True
        self._recent_durations: deque[float] = deque(maxlen=32)
        self.steps = 0
        self.batched_tokens = 0
        self._thread = threading.Thread(target=self._run, name=f"scheduler-{self.name}", daemon=True)
        self._thread.start()

    # -- called from other threads ---------------------------------------------------------

    def submit(self, requests: list[SequenceRequest]) -> None:
        """Queue the sequences of one request together, or raise :class:`QueueFull` for all of them."""
        with self._condition:
            if not self._running:
                raise EngineFailure(f"the scheduler of {self.name} has stopped")
            busy = len(self._waiting) + len(self._active)
            if busy + len(requests) > self.context.n_sequences + self.max_queue:
                raise QueueFull(
                    f"{self.name} is busy: {len(self._active)} sequences decoding and "
                    f"{len(self._waiting)} waiting (at most {self.max_queue} may wait). "
                    "Retry after the time given in Retry-After.",
                    retry_after=self._retry_after())
            self._waiting.extend(requests)
            self._condition.notify()

    def close(self) -> None:
        """Stop the worker after its current step and fail whatever has not finished."""
        with self._condition:
            self._running = False
            self._condition.notify()
        self._thread.join()

    @property
    def active(self) -> int:
        """Sequences holding an id in the KV cache."""
        return len(self._active)

    @property
    def waiting(self) -> int:
        """Sequences waiting for a free id."""
        return len(self._waiting)

    def _retry_after(self) -> int:
        # Guess: a slot frees up about once per (typical sequence duration / slots).
        typical = sorted(self._recent_durations)[len(self._recent_durations) // 2] if self._recent_durations else 5.0
        return max(1, math.ceil(typical * (1 + len(self._waiting)) / self.context.n_sequences))

    # -- the worker thread -----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._condition:
                while self._running and not self._waiting and not self._active:
                    self._condition.wait()
                if not self._running:
                    break
                self._admit()
            try:
                self._step()
            except Exception as error:  # noqa: BLE001 - the worker must outlive one bad step
                log.exception("%s: decoding step failed; failing %d sequences", self.name, len(self._active))
                for sequence in list(self._active):
                    self._finish(sequence, None, error=EngineFailure(f"decoding failed: {error}"))
        for sequence in list(self._active):
            self._finish(sequence, None, error=EngineFailure("the server is shutting down"))
        with self._condition:
            for request in self._waiting:
                self._deliver(request, SequenceUpdate(error=EngineFailure("the server is shutting down")))
            self._waiting.clear()

    def _admit(self) -> None:
        """Move waiting sequences into free ids (called with the lock held)."""
        while self._waiting and self._free_ids:
            request = self._waiting.popleft()
            if request.cancelled:
                continue
            self._active.append(_Sequence(request, self._free_ids.pop(0)))

    def _step(self) -> None:
        for sequence in [s for s in self._active if s.request.cancelled]:
            log.debug("%s: sequence %d cancelled by its client", self.name, sequence.seq_id)
            self._release(sequence)
        if not self._active:
            return

        rows = self._fill_batch()
        if not rows:
            return
        self.context.decode()
        self.steps += 1
        self.batched_tokens += self.context.batch_size

        for sequence, row, kind in rows:
            if sequence not in self._active:
                continue
            if kind == "prompt":
                self._score_prompt_token(sequence, row)
            else:
                self._sample(sequence, self.context.logits(row))

    def _fill_batch(self) -> list[tuple[_Sequence, int, str]]:
        """Fill the batch; return (sequence, batch row, "prompt" or "next") for rows with logits."""
        context = self.context
        context.clear_batch()
        rows = []

        # Decoding sequences first: one token each, so prompts never starve running streams.
        for sequence in self._active:
            if sequence.next_token is not None:
                row = context.add(sequence.next_token, sequence.position - 1, sequence.seq_id, True)
                sequence.next_token = None
                rows.append((sequence, row, "next"))

        for sequence in self._active:
            prompt = sequence.request.prompt
            if sequence.prefilled >= len(prompt):
                continue
            room = context.n_batch - context.batch_size
            if sequence.request.prompt_logprobs:
                room = min(room, PROMPT_LOGPROB_CHUNK)
            if room <= 0:
                break
            end = min(len(prompt), sequence.prefilled + room)
            for position in range(sequence.prefilled, end):
                last = position == len(prompt) - 1
                scored = sequence.request.prompt_logprobs and not last
                row = context.add(prompt[position], position, sequence.seq_id, last or scored)
                if last:
                    rows.append((sequence, row, "next"))
                elif scored:
                    rows.append((sequence, row, "prompt"))
            sequence.prefilled = end
        return rows

    # -- per-sequence work after a decode --------------------------------------------------

    def _score_prompt_token(self, sequence: _Sequence, row: int) -> None:
        """Record the logprob of the prompt token that follows ``row`` (echo with logprobs)."""
        prompt = sequence.request.prompt
        if not sequence.prompt_logprobs:
            sequence.prompt_logprobs.append(self._logprob_entry(prompt[0], None))
        # Rows arrive in prompt order, and the row at position p predicts the token at p + 1.
        following = prompt[len(sequence.prompt_logprobs)]
        logprobs = log_softmax(self.context.logits(row))
        sequence.prompt_logprobs.append(self._logprob_entry(following, logprobs,
                                                            sequence.request.top_logprobs or 0))

    def _sample(self, sequence: _Sequence, logits: np.ndarray) -> None:
        request = sequence.request
        if request.prompt_logprobs and not sequence.prompt_logprobs_sent and not sequence.prompt_logprobs:
            # A one-token prompt has no prompt rows to score, only its unpredicted first token.
            sequence.prompt_logprobs.append(self._logprob_entry(request.prompt[0], None))
        if request.max_tokens == 0:
            # max_tokens=0 with echo scores the prompt and generates nothing.
            self._finish(sequence, "length")
            return
        token = request.sampler.sample(logits)

        if self.model.is_end_of_generation(token):
            self._finish(sequence, "stop")
            return

        sequence.completion_tokens += 1
        text = sequence.decoder.decode(self.model.token_bytes(token))
        if request.top_logprobs is not None:
            entry = self._logprob_entry(token, log_softmax(logits), request.top_logprobs)
            entry.offset = sequence.decoded_chars
            sequence.held_logprobs.append(entry)
        sequence.decoded_chars += len(text)
        released = sequence.matcher.feed(text)

        if sequence.matcher.stopped:
            self._finish(sequence, "stop", released)
        elif sequence.completion_tokens >= request.max_tokens:
            self._finish(sequence, "length", released)
        elif sequence.position - 1 >= self.context.n_ctx_per_sequence:
            # The token just sampled has no KV cell left to be decoded in.
            self._finish(sequence, "length", released)
        else:
            sequence.next_token = token
            self._send(sequence, released)

    def _logprob_entry(self, token: int, logprobs: np.ndarray | None, top: int = 0) -> TokenLogprob:
        piece = self.model.token_bytes(token)
        entry = TokenLogprob(token=piece.decode("utf-8", errors="replace"), token_id=token, bytes=piece,
                             logprob=None if logprobs is None else float(logprobs[token]))
        if logprobs is not None and top > 0:
            best = np.argpartition(-logprobs, top - 1)[:top]
            best = best[np.lexsort((best, -logprobs[best]))]
            entry.top = [(self.model.token_bytes(int(t)).decode("utf-8", errors="replace"), int(t),
                          float(logprobs[t])) for t in best]
        return entry

    def _send(self, sequence: _Sequence, text: str, finish_reason: str | None = None,
              error: Exception | None = None) -> None:
        # Logprobs go out with the text their token starts in; tokens of a cut stop string never do.
        emitted = sequence.matcher.emitted
        if finish_reason is not None and not sequence.matcher.stopped:
            ready, sequence.held_logprobs = sequence.held_logprobs, []
        else:
            ready = [e for e in sequence.held_logprobs if e.offset < emitted]
            sequence.held_logprobs = sequence.held_logprobs[len(ready):]
        prompt_logprobs = None
        if sequence.prompt_logprobs and not sequence.prompt_logprobs_sent:
            prompt_logprobs, sequence.prompt_logprobs_sent = sequence.prompt_logprobs, True
        if not (text or ready or finish_reason or error or prompt_logprobs):
            return
        self._deliver(sequence.request, SequenceUpdate(
            text=text, logprobs=ready, prompt_logprobs=prompt_logprobs, finish_reason=finish_reason,
            completion_tokens=sequence.completion_tokens, error=error))

    def _finish(self, sequence: _Sequence, finish_reason: str | None, text: str = "",
                error: Exception | None = None) -> None:
        if error is None:
            # What the decoder and matcher still hold is text, unless it completes a stop string.
            if not sequence.matcher.stopped:
                text += sequence.matcher.feed(sequence.decoder.flush())
            if not sequence.matcher.stopped:
                text += sequence.matcher.flush()
        self._send(sequence, text, finish_reason, error)
        self._recent_durations.append(time.perf_counter() - sequence.started)
        self._release(sequence)

    def _release(self, sequence: _Sequence) -> None:
        self.context.remove_sequence(sequence.seq_id)
        self._active.remove(sequence)
        with self._condition:
            self._free_ids.append(sequence.seq_id)

    def _deliver(self, request: SequenceRequest, update: SequenceUpdate) -> None:
        try:
            request.deliver(update)
        except Exception:  # noqa: BLE001 - a vanished client must not stop the other sequences
            log.debug("%s: could not deliver an update; cancelling the sequence", self.name, exc_info=True)
            request.cancelled = True

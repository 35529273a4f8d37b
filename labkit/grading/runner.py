"""The grader's side of a notebook process: start it, run the cells, call functions, enforce limits.

>>> with NotebookProcess(cells, Limits(cell_seconds=30)) as notebook:     # doctest: +SKIP
...     notebook.run()
...     notebook.call("encode", "hello", merges)
[104, 101, 108, 108, 111]

The notebook runs once, top to bottom, in its own process (see :mod:`labkit.grading.sandbox`)
inside a fresh temporary folder. A cell that runs past its limit is interrupted and the next cell
runs. When a cell ends the process (``os._exit``, the memory limit, a hard time-out), the process
is started again and the notebook runs again without that cell, so the rest of the work still
counts. A call that ends the process causes the same restart before the next call.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit.grading import wire

log = logging.getLogger(__name__)

# A response longer than this is treated as hostile (16 MiB of JSON is far beyond any lab value).
MAX_MESSAGE_CHARS = 16 * 1024 * 1024
# Seconds a process gets beyond a soft limit to interrupt itself before it is killed.
GRACE_SECONDS = 3.0
# Environment variables a notebook process inherits from the grader, besides the LC_* ones.
INHERITED_VARIABLES = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ", "TERM", "VIRTUAL_ENV", "LD_LIBRARY_PATH",
    "LABKIT_CACHE", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "TIKTOKEN_CACHE_DIR",
})


@dataclass(frozen=True)
class Limits:
    """Time and memory limits of one notebook process."""

    cell_seconds: float = 60.0
    notebook_seconds: float = 180.0  # all cells of one run together
    call_seconds: float = 10.0
    memory_mb: int = 2048
    file_mb: int = 64
    restarts: int = 2  # new processes after a cell or call ended the previous one


@dataclass
class CellOutcome:
    """Outcome of one code cell: ``ok``, ``error``, ``timeout``, ``fatal`` or ``skipped``."""

    index: int
    status: str
    seconds: float = 0.0
    error: dict | None = None

    def describe(self) -> str:
        # "code cell N" is the cell's execution count when the notebook runs top to bottom.
        where = f"code cell {self.index + 1}"
        if self.status == "ok":
            return f"{where}: ran"
        if self.status == "error":
            error = self.error or {}
            message = (error.get("traceback") or error.get("type", "error")).strip()
            origin = ""
            if error.get("cell") is not None and error.get("line"):
                origin = f" (raised in code cell {error['cell'] + 1}, line {error['line']})"
            return f"{where}: {message}{origin}"
        if self.status == "timeout":
            return f"{where}: stopped after its time limit"
        if self.status == "fatal":
            return f"{where}: {self.error['message'] if self.error else 'the process ended'}"
        return f"{where}: skipped ({self.error['message'] if self.error else 'not run'})"


class CallFailed(Exception):
    """A call into the notebook did not return a value, for the reason named by ``kind``.

    Kinds: ``missing`` (no such function), ``error`` (it raised), ``timeout``, ``lost`` (the
    process ended), ``invalid`` (the response could not be read).
    """

    def __init__(self, kind: str, target: str, detail: dict | None = None):
        self.kind = kind
        self.target = target
        self.detail = detail or {}
        super().__init__(f"{target}: {kind} {self.detail}")


class ProcessEnded(Exception):
    """The notebook process ended or stopped responding."""


def _describe_exit(returncode: int | None, memory_mb: int) -> str:
    """Say how a notebook process ended, as a clause: "it was killed (SIGKILL) ..."."""
    if returncode is None:
        return "it stopped answering and was killed"
    if returncode < 0:
        name = signal.Signals(-returncode).name
        if -returncode == signal.SIGKILL:
            return f"it was killed ({name}), possibly for exceeding the {memory_mb} MB memory limit"
        if -returncode == signal.SIGXCPU:
            return f"it was killed ({name}) after using up its CPU time"
        return f"it was killed by {name}"
    return f"it exited with code {returncode} (sys.exit or os._exit)"


class NotebookProcess:
    """One notebook run in a confined child process, with calls into its namespace.

    ``deny`` lists folders the notebook may not read or list (the solutions, the checks, other
    submissions); ``env`` adds environment variables (a service address, for example).
    """

    def __init__(self, cells: list[str], limits: Limits = Limits(), *, deny: list[Path] = (),
                 allow: list[Path] = (), env: dict[str, str] | None = None, label: str = "notebook"):
        self.cells = cells
        self.limits = limits
        self.deny = [str(p) for p in deny]
        self.allow = [str(p) for p in allow]
        self.extra_env = env or {}
        self.label = label
        self.outcomes: list[CellOutcome] = []
        self.fatal_cells: dict[int, str] = {}  # cell index -> what it did to the process
        self.restarts_left = limits.restarts
        self.output_tail = ""
        self._process: subprocess.Popen | None = None
        self._answers: queue.Queue = queue.Queue()
        self._workdir: Path | None = None
        self._ran = False
        self._closed = False
        self._lock = threading.Lock()

    # -- process life ----------------------------------------------------------------------------

    def _environment(self) -> dict[str, str]:
        # Only what Python, the libraries and the model cache need: the grader's own variables
        # (tokens and keys among them) stay out of student code.
        env = {key: value for key, value in os.environ.items()
               if key in INHERITED_VARIABLES or key.startswith("LC_")}
        env.update({
            "MPLBACKEND": "Agg",
            "PYTHONHASHSEED": "0",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            # Thread pools reserve address space per thread, which RLIMIT_AS counts.
            "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "MALLOC_ARENA_MAX": "2",
            "TOKENIZERS_PARALLELISM": "false",
        })
        env.update(self.extra_env)
        env["TMPDIR"] = str(self._workdir)  # tempfile in the notebook stays in its own folder
        return env

    def _start(self) -> None:
        if self._closed:
            raise ProcessEnded("the grader closed this notebook process")
        self._workdir = Path(tempfile.mkdtemp(prefix="labkit-grade-"))
        cpu_seconds = int(self.limits.notebook_seconds + 20 * self.limits.call_seconds + 60)
        command = [sys.executable, "-m", "labkit.grading.sandbox",
                   "--memory-mb", str(self.limits.memory_mb), "--cpu-seconds", str(cpu_seconds),
                   "--file-mb", str(self.limits.file_mb)]
        for path in self.deny:
            command += ["--deny", path]
        for path in self.allow:
            command += ["--allow", path]
        self._process = subprocess.Popen(
            command, cwd=self._workdir, env=self._environment(), stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, encoding="utf-8",
            start_new_session=True,  # its own process group, so one kill ends everything it started
        )
        self._answers = queue.Queue()
        threading.Thread(target=self._read_answers, args=(self._process, self._answers),
                         daemon=True).start()
        log.debug("%s: started process %d in %s", self.label, self._process.pid, self._workdir)
        self._receive(30.0)  # the "ready" line: Python and IPython start-up

    @staticmethod
    def _read_answers(process: subprocess.Popen, answers: queue.Queue) -> None:
        stream = process.stdout
        while True:
            line = stream.readline(MAX_MESSAGE_CHARS + 1)
            if not line:
                answers.put(None)
                return
            if len(line) > MAX_MESSAGE_CHARS:
                process.kill()
                answers.put({"status": "invalid", "fatal": True,
                             "reason": f"the value is larger than {MAX_MESSAGE_CHARS >> 20} MiB"})
                return
            try:
                answers.put(wire.loads(line))
            except wire.WireError as error:
                answers.put({"status": "invalid", "reason": str(error)})

    def _receive(self, timeout: float) -> dict:
        try:
            answer = self._answers.get(timeout=timeout)
        except queue.Empty:
            self._kill()
            raise ProcessEnded(_describe_exit(None, self.limits.memory_mb)) from None
        if answer is None:
            try:
                returncode = self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                returncode = None  # it closed its pipe but kept running
            self._kill()
            raise ProcessEnded(_describe_exit(returncode, self.limits.memory_mb))
        return answer

    def _send(self, message: dict) -> None:
        try:
            self._process.stdin.write(wire.dumps(message) + "\n")
            self._process.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass  # the reader sees the end of the process and reports it

    def _kill(self) -> None:
        if self._process is None:
            return
        try:
            os.killpg(self._process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._process.wait()
        self._collect_output()
        self._cleanup()

    def _collect_output(self) -> None:
        if self._workdir is None:
            return
        try:
            with open(self._workdir / "notebook-output.txt", "rb") as output:
                output.seek(0, os.SEEK_END)
                output.seek(max(0, output.tell() - 4000))
                self.output_tail = output.read().decode("utf-8", "replace")
        except OSError:
            pass

    def _cleanup(self) -> None:
        self._process = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def close(self) -> None:
        """Stop the process and delete its folder; nothing restarts it afterwards."""
        self._closed = True
        if self._process is not None:
            self._send({"op": "exit"})
            try:
                self._process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
            self._kill()

    def __enter__(self) -> "NotebookProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- running the notebook --------------------------------------------------------------------

    def run(self) -> list[CellOutcome]:
        """Run every code cell once (again without fatal cells after a crash); return the outcomes."""
        with self._lock:
            self._run_locked()
            self._ran = True
            return self.outcomes

    def _run_locked(self) -> None:
        while True:
            try:
                self._run_once()
                return
            except ProcessEnded:
                if self.restarts_left <= 0 or self._closed:
                    return
                self.restarts_left -= 1
                log.info("%s: running the notebook again without code cells %s", self.label,
                         sorted(i + 1 for i in self.fatal_cells))

    def _run_once(self) -> None:
        self._start()
        self.outcomes = []
        deadline = time.monotonic() + self.limits.notebook_seconds
        for index, source in enumerate(self.cells):
            if index in self.fatal_cells:
                self.outcomes.append(CellOutcome(index, "skipped", error={
                    "message": f"in an earlier run, {self.fatal_cells[index]}"}))
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.outcomes.append(CellOutcome(index, "skipped", error={
                    "message": f"the notebook used up its {self.limits.notebook_seconds:.0f} s"}))
                continue
            timeout = min(self.limits.cell_seconds, remaining)
            self._send({"op": "cell", "index": index, "source": source, "timeout": timeout})
            try:
                answer = self._receive(timeout + GRACE_SECONDS)
            except ProcessEnded as ended:
                self.fatal_cells[index] = f"the process ended here: {ended}"
                self.outcomes.append(CellOutcome(index, "fatal", error={
                    "message": f"the process ended here: {ended}"}))
                self.outcomes += [CellOutcome(i, "skipped", error={"message": "the process ended"})
                                  for i in range(index + 1, len(self.cells))]
                raise
            outcome = self._cell_outcome(index, answer)
            if outcome.error and outcome.error.get("type") == "MemoryError":
                # What the cell allocated may still be held by its variables, and every later
                # cell and call would fail for it: run the notebook again without this cell.
                message = f"MemoryError: it exceeded the {self.limits.memory_mb} MB memory limit"
                self.fatal_cells[index] = message
                self.outcomes.append(CellOutcome(index, "fatal", outcome.seconds, {"message": message}))
                self._kill()
                raise ProcessEnded("MemoryError")
            self.outcomes.append(outcome)

    @staticmethod
    def _cell_outcome(index: int, answer: dict) -> CellOutcome:
        error = answer.get("error")
        if answer.get("status") == "ok":
            return CellOutcome(index, "ok", answer.get("seconds", 0.0))
        if error and error.get("type") == "CellTimeout":
            return CellOutcome(index, "timeout", answer.get("seconds", 0.0), error)
        return CellOutcome(index, "error", answer.get("seconds", 0.0), error)

    # -- calling into the notebook --------------------------------------------------------------

    def call(self, target: str | tuple[wire.Handle, str] | dict, *args: Any, **kwargs: Any) -> Any:
        """Call a function the notebook defined and return its value.

        ``target`` is a name in the notebook, ``(handle, "method")``, or
        ``{"module": ..., "attr": ...}`` for a library function. Raises :class:`CallFailed`
        when there is no value to compare.
        """
        if isinstance(target, dict):
            name = f"{target['module']}.{target['attr']}"
        else:
            name = target if isinstance(target, str) else f"{target[0].type_name}.{target[1]}"
        with self._lock:
            if not self._ran:
                self._run_locked()
                self._ran = True
            if self._process is None:
                self._restart_for_calls(name)
            wire_target = target if isinstance(target, (str, dict)) else {
                "handle": target[0].id, "attr": target[1]}
            message = {"op": "call", "target": wire_target,
                       "args": wire.encode_value(list(args)),
                       "kwargs": wire.encode_value(kwargs),
                       "timeout": self.limits.call_seconds}
            self._send(message)
            try:
                answer = self._receive(self.limits.call_seconds + GRACE_SECONDS)
            except ProcessEnded as ended:
                raise CallFailed("lost", name, {"message": str(ended)}) from None
            if answer.get("fatal"):
                self._kill()  # the reader stopped; the next call starts a new process

        status = answer.get("status")
        if status == "ok":
            try:
                return wire.decode_value(answer.get("value"))
            except (wire.WireError, TypeError, ValueError) as error:
                raise CallFailed("invalid", name, {"message": str(error)}) from None
        if status in ("missing", "timeout", "error", "invalid"):
            raise CallFailed(status, name, answer.get("error") or {"message": answer.get("reason")})
        raise CallFailed("invalid", name, {"message": f"unexpected response status {status!r}"})

    def _restart_for_calls(self, name: str) -> None:
        if self.restarts_left <= 0:
            raise CallFailed("lost", name, {"message": "it ended earlier and was restarted "
                                                       "as often as allowed"})
        self.restarts_left -= 1
        self._run_locked()
        if self._process is None:
            raise CallFailed("lost", name, {"message": "it could not be started again"})

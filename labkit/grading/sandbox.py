"""The student's side of grading: a process that runs one notebook and then serves calls.

The grader starts ``python -m labkit.grading.sandbox`` in an empty temporary folder and talks to
it over stdin/stdout, one JSON message per line (see :mod:`labkit.grading.wire`). The notebook's
own printing goes to ``notebook-output.txt`` in that folder, so it cannot corrupt the messages.

Messages from the grader, each followed by one response line:

- ``{"op": "cell", "index": 3, "source": "...", "timeout": 30}`` runs one code cell with IPython
  (magics work) and answers ``{"status": "ok"}`` or ``{"status": "error", "error": {...}}``.
- ``{"op": "call", "target": "encode", "args": [...], "kwargs": {...}, "timeout": 10}`` calls a
  function the notebook defined (or a method of a :class:`~labkit.grading.wire.Handle`) and
  answers with the returned value.
- ``{"op": "exit"}`` ends the process.

Limits, set before any notebook code runs: address space (``RLIMIT_AS``), size of written files,
CPU seconds, no core dumps. An audit hook (PEP 578) rejects opening, listing or linking paths
under the folders the grader names with ``--deny`` (the course's solutions and checks, the other
submissions), other processes' ``/proc`` entries, and starting processes, because a child
process would be outside the hook.

NOTE: an audit hook stops Python code, not native code, so ``ctypes`` and a direct call of
``_posixsubprocess.fork_exec`` can still reach the file system or start a process. The hook also
leaves writes outside the temporary folder, network connections and copies of the course in
folders the grader was not told about unblocked. Graders that face determined attackers run this
process as a separate user (without read access to the course) or in a container as well.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import signal
import sys
import time
import traceback
from typing import Any

from labkit.grading import wire

OUTPUT_FILE = "notebook-output.txt"

SPAWN_EVENTS = frozenset({
    "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
    "os.forkpty", "pty.spawn", "os.startfile",
})
PATH_EVENTS = {
    # event name -> positions of path arguments
    "open": (0,), "os.listdir": (0,), "os.scandir": (0,), "os.chdir": (0,), "os.link": (0, 1),
    "os.symlink": (0, 1), "os.rename": (0, 1), "os.remove": (0,), "os.rmdir": (0,),
    "os.mkdir": (0,), "os.truncate": (0,), "os.chmod": (0,), "os.chown": (0,), "os.utime": (0,),
    "shutil.copyfile": (0, 1), "shutil.copytree": (0, 1), "shutil.rmtree": (0,),
    "glob.glob": (0,), "os.walk": (0,),
}


class CellTimeout(BaseException):
    """Raised inside notebook code when a cell or call runs past its time limit.

    A BaseException, so that ``except Exception`` in student code does not swallow it.
    """


class PathGuard:
    """Decide which paths notebook code may touch: the deepest matching rule wins."""

    def __init__(self, deny: list[str], allow: list[str]):
        rules = [(os.path.realpath(p), False) for p in deny] + [(os.path.realpath(p), True) for p in allow]
        # Longest prefix first, so an allowed folder inside a denied one wins.
        self.rules = sorted(rules, key=lambda rule: len(rule[0]), reverse=True)
        self.own_pid = str(os.getpid())

    def allows(self, path: Any) -> bool:
        if isinstance(path, int) or path is None:
            return True  # an already open file descriptor, or the current folder
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        resolved = os.path.realpath(os.fspath(path))
        parts = resolved.split(os.sep)
        if len(parts) > 2 and parts[1] == "proc" and parts[2].isdigit() and parts[2] != self.own_pid:
            return False  # another process's memory, environment or open files
        for prefix, allowed in self.rules:
            if resolved == prefix or resolved.startswith(prefix + os.sep):
                return allowed
        return True


def install_audit_hook(guard: PathGuard) -> None:
    def hook(event: str, args: tuple) -> None:
        if event in SPAWN_EVENTS:
            raise PermissionError("starting other processes is not allowed while grading")
        positions = PATH_EVENTS.get(event)
        if positions is None:
            return
        for position in positions:
            if position < len(args) and not guard.allows(args[position]):
                raise PermissionError(f"access to {args[position]!r} is not allowed while grading")

    sys.addaudithook(hook)


def set_limits(memory_mb: int, cpu_seconds: int, file_mb: int) -> None:
    memory = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 5))
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_mb * 1024 * 1024,) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _raise_timeout(signum, frame):
    raise CellTimeout("time limit exceeded")


class Alarm:
    """Raise :class:`CellTimeout` in the running code after ``seconds`` of wall time."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def __enter__(self):
        signal.signal(signal.SIGALRM, _raise_timeout)
        signal.setitimer(signal.ITIMER_REAL, self.seconds)

    def __exit__(self, *exc):
        signal.setitimer(signal.ITIMER_REAL, 0)


class NotebookServer:
    """Runs cells in one IPython namespace and serves calls into it."""

    def __init__(self, out: io.TextIOBase):
        from IPython.core.interactiveshell import InteractiveShell
        from traitlets.config import Config

        config = Config()
        config.HistoryManager.enabled = False
        config.InteractiveShell.colors = "nocolor"
        self.shell = InteractiveShell.instance(config=config)
        self.out = out
        self.handles: dict[int, Any] = {}
        self.cell_of_count: dict[int, int] = {}  # IPython execution count -> notebook cell index

    # -- describing errors without revealing anything but the student's own code ---------------

    def _student_location(self, error: BaseException) -> dict:
        """Return the notebook cell and line where ``error`` was raised in student code, if any."""
        cell = line = None
        tb = error.__traceback__
        while tb is not None:
            name = tb.tb_frame.f_code.co_filename
            if name.startswith("<ipython-input-"):
                count = int(name.split("-")[2])
                cell, line = self.cell_of_count.get(count), tb.tb_lineno
            tb = tb.tb_next
        if isinstance(error, SyntaxError) and error.filename and error.filename.startswith("<ipython-input-"):
            cell, line = self.cell_of_count.get(int(error.filename.split("-")[2])), error.lineno
        return {"cell": cell, "line": line}

    def _describe(self, error: BaseException, with_message: bool) -> dict:
        described = {"type": type(error).__name__,
                     # The class and its bases, so a subclass of ValueError counts as a ValueError.
                     "types": [cls.__name__ for cls in type(error).__mro__],
                     **self._student_location(error)}
        if with_message:
            described["message"] = str(error)[:500]
            described["traceback"] = "".join(
                traceback.format_exception_only(type(error), error))[-2000:]
        return described

    # -- operations ----------------------------------------------------------------------------

    def run_cell(self, message: dict) -> dict:
        count = self.shell.execution_count
        self.cell_of_count[count] = message["index"]
        started = time.perf_counter()
        with Alarm(message["timeout"]):
            try:
                result = self.shell.run_cell(message["source"], store_history=True)
                error = result.error_before_exec or result.error_in_exec
            except CellTimeout as timeout:  # raised outside the cell's own code
                error = timeout
        sys.stdout.flush()
        sys.stderr.flush()
        answer: dict = {"status": "ok", "seconds": round(time.perf_counter() - started, 3)}
        if error is not None:
            # Cell errors come from the student's own code and public checks: show them whole.
            answer.update(status="error", error=self._describe(error, with_message=True))
        return answer

    def _resolve_target(self, target: Any):
        if isinstance(target, dict) and "module" in target:
            import importlib

            found = importlib.import_module(target["module"])
            for part in target["attr"].split("."):
                found = getattr(found, part, None)
            return found
        if isinstance(target, str):
            namespace = self.shell.user_ns
            if target not in namespace or target.startswith("_"):
                return None
            return namespace[target]
        handle = self.handles.get(target["handle"])
        return getattr(handle, target["attr"], None)

    def _keep(self, value: Any) -> wire.Handle:
        handle = wire.Handle(len(self.handles) + 1, type(value).__name__)
        self.handles[handle.id] = value
        return handle

    def _unwrap(self, value: Any) -> Any:
        if isinstance(value, wire.Handle):
            return self.handles[value.id]
        if isinstance(value, list):
            return [self._unwrap(item) for item in value]
        if isinstance(value, tuple):
            return tuple(self._unwrap(item) for item in value)
        if isinstance(value, dict):
            return {key: self._unwrap(item) for key, item in value.items()}
        return value

    def call(self, message: dict) -> dict:
        function = self._resolve_target(message["target"])
        if function is None:
            return {"status": "missing"}
        if not callable(function):
            return {"status": "missing", "error": {"type": type(function).__name__, "not_callable": True}}
        args = self._unwrap(wire.decode_value(message.get("args", [])))
        kwargs = self._unwrap(wire.decode_value(message.get("kwargs", {})))
        try:
            with Alarm(message["timeout"]):
                value = function(*args, **kwargs)
                encoded = wire.encode_value(value, keep=self._keep)
        except CellTimeout:
            return {"status": "timeout"}
        except BaseException as error:  # noqa: BLE001 - any failure of student code is reported
            # Only the type and the student's own line: the message may echo a hidden input.
            return {"status": "error", "error": self._describe(error, with_message=False)}
        return {"status": "ok", "value": encoded}

    def serve(self, requests: io.TextIOBase) -> None:
        for line in requests:
            message = wire.loads(line)
            if message["op"] == "exit":
                return
            if message["op"] == "cell":
                answer = self.run_cell(message)
            elif message["op"] == "call":
                answer = self.call(message)
            else:
                answer = {"status": "error", "error": {"type": "ProtocolError",
                                                       "message": f"unknown op {message['op']!r}"}}
            try:
                line = wire.dumps(answer)
            except (MemoryError, ValueError) as error:
                # A returned value too large (or too strange) to serialize is the student's
                # value, not a crash of this process.
                line = wire.dumps({"status": "invalid", "reason": f"{type(error).__name__} "
                                                                  "while sending the value"})
            self.out.write(line + "\n")
            self.out.flush()


def _take_over_standard_streams() -> tuple[io.TextIOBase, io.TextIOBase]:
    """Keep stdin/stdout for messages; point fds 0, 1 and 2 at /dev/null and the output file."""
    requests = os.fdopen(os.dup(0), "r", encoding="utf-8")
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
    output = os.open(OUTPUT_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(output, 1)
    os.dup2(output, 2)
    os.close(null)
    os.close(output)
    return requests, answers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labkit.grading.sandbox")
    parser.add_argument("--memory-mb", type=int, required=True)
    parser.add_argument("--cpu-seconds", type=int, required=True)
    parser.add_argument("--file-mb", type=int, default=64)
    parser.add_argument("--deny", action="append", default=[])
    parser.add_argument("--allow", action="append", default=[])
    args = parser.parse_args(argv)

    requests, answers = _take_over_standard_streams()
    server = NotebookServer(answers)
    # Limits and the hook come after IPython is loaded: the notebook, not the shell, is confined.
    set_limits(args.memory_mb, args.cpu_seconds, args.file_mb)
    install_audit_hook(PathGuard(args.deny, args.allow + [os.getcwd()]))
    answers.write(wire.dumps({"status": "ready"}) + "\n")
    answers.flush()
    server.serve(requests)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Hidden checks: points per check, and failure messages that name the behaviour, not the value.

A lab's checks are functions in ``tests/grading/test_lab_*.py``. Each takes the student's notebook
and the reference solution (both :class:`Notebook` proxies running in their own processes) and
raises :class:`CheckFailed` when the student's values differ:

>>> @check(points=2)
... def test_decode_inverts_encode(student, reference):
...     '''decode(encode(text)) gives the text back'''
...     merges = reference.train_bpe("low lower lowest", 260)
...     expect_equal(student.decode(student.encode("lowest", merges), merges), "lowest",
...                  "decoding what encode returned does not give the text back")

The same functions run under pytest (``student`` and ``reference`` are fixtures) and under
``labkit grade``, which adds up the points.
"""

from __future__ import annotations

import importlib.util
import inspect
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from labkit.grading import wire
from labkit.grading.runner import CallFailed, NotebookProcess


class CheckFailed(AssertionError):
    """The student's notebook does not show the behaviour a check expects; the message names the behaviour."""


class GraderError(RuntimeError):
    """The reference solution or the grader itself failed: not the student's fault."""


@dataclass(frozen=True)
class CheckInfo:
    """A check's points and the behaviour it grades (the first line of its docstring)."""

    name: str
    points: float
    behaviour: str


def check(points: float) -> Callable:
    """Mark a function as a hidden check worth ``points``."""
    if points <= 0:
        raise ValueError(f"a check must be worth more than 0 points, not {points}")

    def mark(function: Callable) -> Callable:
        doc = inspect.getdoc(function) or function.__name__.removeprefix("test_").replace("_", " ")
        function.labkit_check = CheckInfo(function.__name__, float(points), doc.splitlines()[0])
        return function

    return mark


def load_checks(path: Path) -> list[Callable]:
    """Import a checks file and return its checks in the order they are defined."""
    module_name = f"labkit_checks_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise GraderError(f"cannot import checks from {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    checks = [value for value in vars(module).values() if hasattr(value, "labkit_check")]
    if not checks:
        raise GraderError(f"{path} defines no checks (functions decorated with @check)")
    return sorted(checks, key=lambda function: function.__code__.co_firstlineno)


# -- the two sides of a comparison --------------------------------------------------------------

def _call_failure_message(failure: CallFailed) -> str:
    """Describe a failed call in terms of the student's own code, never the check's inputs."""
    name = f"`{failure.target}`"
    detail = failure.detail
    if failure.kind == "missing" and detail.get("not_callable"):
        return f"{name} is a {detail.get('type')} in the notebook, not a function"
    if failure.kind == "missing":
        return f"{name} is not defined in the notebook (check its name, and that its cell ran)"
    if failure.kind == "timeout":
        return f"{name} did not return within the time limit (an endless loop, or a slow algorithm)"
    if failure.kind == "lost":
        return f"the notebook process ended while {name} ran ({detail.get('message', 'no reason known')})"
    if failure.kind == "invalid":
        return f"{name} returned a value the grader cannot read ({detail.get('message', '')})"
    where = ""
    if detail.get("cell") is not None:
        where = f" (code cell {detail['cell'] + 1}, line {detail.get('line')})"
    if detail.get("type") == "NotImplementedError":
        return f"{name} is not implemented yet: it raises NotImplementedError{where}"
    return f"{name} raised {detail.get('type', 'an exception')}{where}"


class Notebook:
    """Calls into a notebook process as if its functions were local: ``nb.encode("hi", merges)``.

    For the student, a failed call raises :class:`CheckFailed` with a message about their code.
    For the reference (``trusted=True``), it raises :class:`GraderError`: the solution must work.
    Values the wire cannot carry come back as handles; ``nb.method(handle, "name", ...)`` calls
    their methods.
    """

    def __init__(self, process: NotebookProcess, *, trusted: bool = False,
                 env: dict[str, str] | None = None):
        self.process = process
        self.trusted = trusted
        self.env = env or {}          # what the lab's services gave this notebook (a host, say)
        self.state: dict[str, Any] = {}  # values checks share, such as a client handle
        self._cache: dict[str, Any] = {}
        # Names that ran past the time limit once: calling them again would spend the whole
        # grading budget on one endless loop.
        self._timed_out: set[str] = set()

    def call(self, target, *args: Any, **kwargs: Any) -> Any:
        # The reference gives the same value for the same inputs, so many submissions share it.
        key = None
        if self.trusted and isinstance(target, str):
            key = wire.dumps({"t": target, "a": wire.encode_value(list(args)),
                              "k": wire.encode_value(kwargs)})
            if key in self._cache:
                return self._cache[key]
        if target in self._timed_out:
            raise CheckFailed(f"`{target}` was not called again: it ran past the time limit "
                              "in an earlier check")
        try:
            value = self.process.call(target, *args, **kwargs)
        except CallFailed as failure:
            if failure.kind == "timeout" and isinstance(target, str):
                self._timed_out.add(target)
            if self.trusted:
                raise GraderError(f"the reference solution failed: {failure}") from None
            raise CheckFailed(_call_failure_message(failure)) from None
        if key is not None:
            self._cache[key] = value
        return value

    def library(self, target: str, *args: Any, **kwargs: Any) -> Any:
        """Call a library function in the notebook's process (``"module:attr"``), not student code.

        Checks use it to build objects that only live there, a client for example.
        """
        module, _, attr = target.partition(":")
        try:
            return self.process.call({"module": module, "attr": attr}, *args, **kwargs)
        except CallFailed as failure:
            raise GraderError(f"calling {target} in the notebook process failed: {failure}") from None

    def method(self, handle: wire.Handle, name: str, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(handle, wire.Handle):
            raise CheckFailed(f"`{name}` needs an object made by the notebook, not a "
                              f"{type(handle).__name__}")
        return self.call((handle, name), *args, **kwargs)

    def __getattr__(self, name: str) -> Callable:
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args, **kwargs: self.call(name, *args, **kwargs)


# -- expectations -------------------------------------------------------------------------------

def describe_value(value: Any) -> str:
    """Describe a value by its type and size, so the student sees what their function returned."""
    if isinstance(value, (list, tuple, dict, set, str, bytes)):
        return f"a {type(value).__name__} of length {len(value)}"
    if isinstance(value, wire.Handle):
        return f"an object of type {value.type_name}"
    return f"a value of type {type(value).__name__}"


def expect(condition: bool, behaviour: str) -> None:
    """Fail with ``behaviour`` unless ``condition`` holds."""
    if not condition:
        raise CheckFailed(behaviour)


def expect_equal(got: Any, expected: Any, behaviour: str, *, tolerance: float = 0.0) -> None:
    """Fail with ``behaviour`` and a description of ``got`` unless it equals ``expected``.

    Numbers compare within ``tolerance`` (relative); the expected value is never in the message.
    """
    if not _equal(got, expected, tolerance):
        raise CheckFailed(f"{behaviour} (your function returned {describe_value(got)})")


def expect_raises(notebook: Notebook, error_type: str, behaviour: str, target: str,
                  *args: Any, **kwargs: Any) -> None:
    """Fail with ``behaviour`` unless calling ``target`` in the notebook raises ``error_type``.

    ``error_type`` is a class name; a subclass of it counts too.
    """
    try:
        value = notebook.process.call(target, *args, **kwargs)
    except CallFailed as failure:
        raised = failure.detail.get("types") or [failure.detail.get("type")]
        if failure.kind == "error" and error_type in raised:
            return
        if failure.kind == "error" and raised[0] != "NotImplementedError":
            raise CheckFailed(f"{behaviour} (`{target}` raised {raised[0]}, not {error_type})") from None
        raise CheckFailed(_call_failure_message(failure)) from None
    raise CheckFailed(f"{behaviour} (`{target}` returned {describe_value(value)} "
                      f"instead of raising {error_type})")


def _equal(got: Any, expected: Any, tolerance: float) -> bool:
    if isinstance(got, bool) != isinstance(expected, bool):
        return False
    if isinstance(expected, float) or isinstance(got, float):
        if not isinstance(got, (int, float)) or isinstance(got, bool):
            return False
        if math.isnan(expected) and math.isnan(got):
            return True
        return math.isclose(got, expected, rel_tol=tolerance, abs_tol=tolerance * 1e-9)
    if isinstance(expected, (list, tuple)) and isinstance(got, (list, tuple)):
        return len(got) == len(expected) and all(
            _equal(g, e, tolerance) for g, e in zip(got, expected))
    if isinstance(expected, dict) and isinstance(got, dict):
        return got.keys() == expected.keys() and all(
            _equal(got[key], expected[key], tolerance) for key in expected)
    return type(got) is type(expected) and got == expected

"""Labs and their grader: release student notebooks from solutions, run submissions confined,
grade them with hidden checks.

- :mod:`~labkit.grading.release`: ``solutions/`` -> ``labs/`` (solution regions become stubs).
- :mod:`~labkit.grading.sandbox` and :mod:`~labkit.grading.runner`: the notebook's process and
  the grader's handle on it (limits, restarts, calls over a JSON pipe).
- :mod:`~labkit.grading.checks`: points per check and messages that name the behaviour.
- :mod:`~labkit.grading.grade` and :mod:`~labkit.grading.report`: sessions, parallel grading,
  Gradescope ``results.json`` and the terminal summary.
"""

"""Labs and their grader: release student notebooks from solutions, run submissions confined,
grade them with hidden checks.

The instructor's loop::

    labkit release                                  # solutions/ -> labs/ (answers become stubs)
    labkit release --check                          # exit 1 if labs/ is out of date
    labkit grade submissions/ --lab 1.1 --out graded/   # report, results.json per student, summary.csv
    pytest tests/grading/test_lab_1_1.py --submission alice.ipynb   # the same checks under pytest

Modules:

- :mod:`~labkit.grading.release`: ``solutions/`` -> ``labs/`` (solution regions become stubs).
- :mod:`~labkit.grading.sandbox` and :mod:`~labkit.grading.runner`: the notebook's process and
  the grader's handle on it (limits, restarts, calls over a JSON pipe, see :mod:`.wire`).
- :mod:`~labkit.grading.checks`: points per check and messages that name the behaviour.
- :mod:`~labkit.grading.grade` and :mod:`~labkit.grading.report`: sessions, parallel grading,
  Gradescope ``results.json`` and the terminal summary.
- :mod:`~labkit.grading.labs` and :mod:`~labkit.grading.services`: the lab catalog, and the
  private Databricks stand-in each lab 1.2 notebook gets.
"""

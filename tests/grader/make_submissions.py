"""Write the submission fixtures of the grader's tests: seeded bugs and hostile notebooks.

Run ``python tests/grader/make_submissions.py`` after changing a solution notebook; it rewrites
``tests/grader/submissions/lab_X_Y/*.ipynb`` from ``solutions/`` and ``labs/``. Each fixture is a
copy of the solution (or of the student skeleton) with one change, described in ``FIXTURES``.
The expected grade of each one is in ``test_submissions.py``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent / "submissions"


def _replace(old: str, new: str):
    """An edit that replaces ``old`` (which must occur exactly once in the notebook) by ``new``."""
    def edit(notebook):
        hits = [cell for cell in notebook.cells if cell.cell_type == "code" and old in cell.source]
        if len(hits) != 1 or hits[0].source.count(old) != 1:
            raise SystemExit(f"edit target found {len(hits)} times: {old!r}")
        hits[0].source = hits[0].source.replace(old, new)
    return edit


def _insert_cell(source: str, after_code_cell: int = 0):
    """An edit that adds a code cell after the given code cell (0: after the first)."""
    def edit(notebook):
        code_positions = [i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"]
        position = code_positions[after_code_cell] + 1
        cell = nbformat.v4.new_code_cell(source)
        cell["id"] = f"fixture-cell-{len(notebook.cells)}"
        notebook.cells.insert(position, cell)
    return edit


def _set_lab(lab: str):
    def edit(notebook):
        notebook.metadata["labkit"]["lab"] = lab
    return edit


READ_SOLUTIONS = '''
import json, os, pathlib, labkit
root = pathlib.Path(labkit.__file__).resolve().parents[1]
solution = json.loads((root / "solutions" / "lab_1_1_tokenizer.ipynb").read_text())
for cell in solution["cells"]:
    if cell["cell_type"] == "code":
        exec("".join(cell["source"]))
'''

ROOT_OF_COURSE = "import os, pathlib, labkit\nroot = pathlib.Path(labkit.__file__).resolve().parents[1]\n"
SNOOP_CELLS = [  # each should fail with PermissionError
    ROOT_OF_COURSE + 'os.listdir(root / "tests" / "grading")',
    ROOT_OF_COURSE + 'open(f"/proc/{os.getppid()}/cmdline").read()',
    ROOT_OF_COURSE + 'os.symlink(root / "solutions", "peek")\nos.listdir("peek")',
    ROOT_OF_COURSE + 'os.listdir(root)',
]

SUBPROCESS = '''
import subprocess
print(subprocess.run(["cat", "../solutions/lab_1_1_tokenizer.ipynb"], capture_output=True).stdout)
'''

NOISY = '''
import os, sys
print('{"status": "ok", "value": 1}')
sys.stderr.write('{"status": "ok"}\\n')
os.write(1, b'{"status": "ok", "value": 2}\\n')
print("x" * 100_000)
'''

# name -> (base notebook: "solution" | "skeleton", edits, what it tests)
FIXTURES_1_1 = {
    "bug_merge_overlapping": ("solution", [_replace("            merged.append(new_id)\n            i += 2",
                                                     "            merged.append(new_id)\n            i += 1")],
                              "merge steps over one id after a match, so occurrences overlap"),
    "bug_ties_largest": ("solution", [_replace("best = min(totals, key=lambda pair: (-totals[pair], pair))",
                                                "best = max(totals, key=lambda pair: (totals[pair], pair))")],
                         "train_bpe breaks ties towards the largest pair"),
    "bug_left_padding_mask": ("solution", [_replace("            mask.append([0] * padding + [1] * len(row))",
                                                     "            mask.append([1] * len(row) + [0] * padding)")],
                              "left padding leaves the attention mask right-aligned"),
    "bug_special_injection": ("solution", [_replace("    if not allowed_special:\n        return encode(text, merges)",
                                                     "    allowed_special = set(specials)")],
                              "every special string in the text becomes its control id"),
    "bug_strict_decode": ("solution", [_replace('return b"".join(pieces).decode("utf-8", errors="replace")',
                                                 'return b"".join(pieces).decode("utf-8")')],
                          "decode raises on invalid UTF-8 instead of replacing it"),
    "syntax_error": ("solution", [_replace("def merge(ids, pair, new_id):", "def merge(ids, pair, new_id)")],
                     "a syntax error in the cell that defines count_pairs and merge"),
    "infinite_loop_cell": ("skeleton", [_insert_cell("while True:\n    pass")],
                           "a cell that never ends"),
    "infinite_loop_function": ("solution", [_replace("    vocabulary = token_bytes(merges)\n    pieces = []",
                                                      "    while True:\n        pass")],
                               "decode never returns"),
    "memory_exhaustion": ("solution", [_insert_cell("hog = []\nwhile True:\n    hog.append(bytearray(50_000_000))")],
                          "a cell that allocates until the memory limit"),
    "os_exit": ("solution", [_insert_cell("import os\nos._exit(0)")],
                "a cell that ends the process without cleanup"),
    "sys_exit": ("skeleton", [_insert_cell("import sys\nsys.exit('done')")],
                 "a cell that raises SystemExit"),
    "killed": ("skeleton", [_insert_cell("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")],
               "a cell after which the process is killed, as the kernel's OOM killer would"),
    "read_solutions": ("skeleton", [_insert_cell(READ_SOLUTIONS, after_code_cell=3)],
                       "copies the reference solution from the course folder"),
    "snoop": ("skeleton", [_insert_cell(source) for source in reversed(SNOOP_CELLS)],
              "lists the checks, reads the grader's command line, links to solutions/"),
    "subprocess_cheat": ("skeleton", [_insert_cell(SUBPROCESS)],
                         "starts a shell command to read the solutions"),
    "noisy_output": ("skeleton", [_insert_cell(NOISY), _replace(
                         '    raise NotImplementedError("zip(ids, ids[1:]) gives the adjacent pairs")',
                         "    print('{\"status\": \"ok\", \"value\": {}}')\n"
                         "    return dict(Counter(zip(ids, ids[1:])))")],
                     "prints protocol-like lines to stdout, stderr and file descriptor 1"),
    "huge_return": ("skeleton", [_replace('    raise NotImplementedError("zip(ids, ids[1:]) gives the adjacent pairs")',
                                          '    return "x" * 20_000_000')],
                    "count_pairs returns a 20 MB string"),
    "wrong_lab": ("solution", [_set_lab("1.2")], "the metadata says lab 1.2"),
    "untouched_skeleton": ("skeleton", [], "the released lab, unchanged"),
    "solution": ("solution", [], "the reference solution itself"),
}

RAW_FIXTURES_1_1 = {
    "invalid_json.ipynb": '{"cells": [{"cell_type": "code", "source": "x = 1"',
    "not_a_notebook.ipynb": '{"hello": "world"}',
}


def write_fixtures(lab_folder: str, notebook_name: str, fixtures: dict, raw: dict) -> None:
    target = OUT / lab_folder
    target.mkdir(parents=True, exist_ok=True)
    bases = {"solution": ROOT / "solutions" / notebook_name, "skeleton": ROOT / "labs" / notebook_name}
    for name, (base, edits, _) in fixtures.items():
        notebook = nbformat.read(bases[base], as_version=4)
        for edit in edits:
            edit(notebook)
        nbformat.write(notebook, target / f"{name}.ipynb")
    for name, text in raw.items():
        (target / name).write_text(text, encoding="utf-8")
    (target / "README.json").write_text(json.dumps(
        {name: description for name, (_, _, description) in fixtures.items()}, indent=1) + "\n")
    print(f"wrote {len(fixtures) + len(raw)} fixtures to {target}")


FIXTURES_1_2 = {
    "bug_no_system": ("solution", [_replace(
        "    if system is not None:\n        messages.append(ChatMessage(role=ChatMessageRole.SYSTEM, content=system))\n",
        "")], "chat drops the system message"),
    "bug_catch_all": ("solution", [_replace(
        "    except NotFound:\n        return \"endpoint_not_found\"",
        "    except Exception:\n        return \"endpoint_not_found\"")],
        "ask_or_explain catches every exception and blames the endpoint"),
    "bug_user_rate_limit": ("solution", [_replace("calls=calls_per_minute, key=AiGatewayRateLimitKey.ENDPOINT",
                                                  "calls=calls_per_minute, key=AiGatewayRateLimitKey.USER")],
                            "set_rate_limit limits each user instead of the whole endpoint"),
    "untouched_skeleton": ("skeleton", [], "the released lab, unchanged"),
}

FIXTURES_1_3 = {
    "bug_cost_per_thousand": ("solution", [_replace(
        "    return (input_tokens * input_usd_per_1m + output_tokens * output_usd_per_1m) / 1_000_000",
        "    return (input_tokens * input_usd_per_1m + output_tokens * output_usd_per_1m) / 1_000")],
        "request_cost treats prices as per thousand tokens"),
    "bug_unsorted_table": ("solution", [_replace(
        '    return sorted(rows, key=lambda row: (row["usd_per_month"], row["endpoint"]))',
        "    return rows")], "cost_table keeps the endpoints' order"),
    "bug_fractional_machines": ("solution", [_replace(
        "    machines = max(1, math.ceil(requests_per_month / capacity_per_month))",
        "    machines = requests_per_month / capacity_per_month")],
        "self_hosted_monthly_cost pays for fractions of a machine, and nothing at zero volume"),
    "untouched_skeleton": ("skeleton", [], "the released lab, unchanged"),
}


if __name__ == "__main__":
    write_fixtures("lab_1_1", "lab_1_1_tokenizer.ipynb", FIXTURES_1_1, RAW_FIXTURES_1_1)
    write_fixtures("lab_1_2", "lab_1_2_foundation_model_apis.ipynb", FIXTURES_1_2, {})
    write_fixtures("lab_1_3", "lab_1_3_token_costs.ipynb", FIXTURES_1_3, {})
    sys.exit(0)

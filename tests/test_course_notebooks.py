"""The course's conventions (issue 20), read from the committed notebooks as JSON; nothing is executed.

* Markdown allow-list: prose never states a measured number. A number in a Markdown cell must be a figure
  quoted in docs/method.md, a value written in the notebook's `parameters` cell, an integer <= 10, or a
  reference ("eq. (2)", "Table 1", "notebook 04", "**Exercise 3.**", "00_overview", list markers,
  numbered headings). Measured numbers go through `display(Markdown(f"..."))` in code cells.
* The README's course table lists exactly the messages of the asserts in the cell tagged `claims`.
* Output hygiene: no progress-bar residue and no absolute machine paths in committed outputs.
* Exercises: `## Exercises`, 2-4 `**Exercise N.**` cells with a hint, each followed by one hidden,
  executed `solution` cell that asserts its result (nbval runs them in `make test`).

Every check is parametrised per notebook, so a failure names the notebook.
"""
from __future__ import annotations

import ast
import json
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NB_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("[0-9][0-9]_*.ipynb"))
METHOD = ROOT / "docs" / "method.md"
README = ROOT / "README.md"
CLAIMS_COLUMN = "what its closing asserts check"


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _tags(cell: dict) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _tagged(nb: dict, tag: str) -> list[tuple[int, dict]]:
    return [(i, c) for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code" and tag in _tags(c)]


# --------------------------------------------------------------------------------------------------
# Numbers in text
# --------------------------------------------------------------------------------------------------

# A number: digits with an optional decimal part; thousands groups separated by a comma, an underscore or
# a (thin / no-break) space are one number ("8,541", "134 415", "5_000_000"). A number glued to a name
# ("VGGFace2", "tf_efficientnet_b0", "RexNet-150", "L2", "$x_1$") is part of the name, not a number.
_SEP = "[,_ \u00a0\u2009\u202f]"
NUMBER_RE = re.compile(
    rf"(?<![A-Za-z_\d.])(?<![A-Za-z]-)"
    rf"(?:\d{{1,3}}(?:{_SEP}\d{{3}})+(?![\d])|\d+)(?:\.\d+)?(?![\d])")

# Spans that are not prose: replaced by spaces (positions kept) before numbers are read.
_URL_RE = re.compile(r"https?://[^\s)>\]]+|www\.[^\s)>\]]+")
_LINK_TARGET_RE = re.compile(r"\]\([^)]*\)")                       # [text](target): the target only
_HTML_TAG_RE = re.compile(r"<[A-Za-z/][^>\n]*>")
_NOTEBOOK_FILE_RE = re.compile(r"(?<![\w/])\d{2}_[A-Za-z]\w*(?:\.ipynb)?")   # 00_overview_and_data
_LIST_MARKER_RE = re.compile(r"^[ \t]*\d+[.)](?=\s)", re.M)         # "1. " / "2) " opening a list item
_HEADING_NUMBER_RE = re.compile(r"^[ \t]*#{1,6}[ \t]+\d+(?:\.\d+)*\.?", re.M)  # "## 3. Title"
# References: "eq. (2)", "eqs. (1) and (2)", "Table 1", "Fig. 1", "notebook 04", "notebooks 05, 06 and 07",
# "notebooks 02-04", "section 4", "**Exercise 3.**"
_REF_NUM = r"\(?\d+(?![.,]?\d)\)?"
_REFERENCE_RE = re.compile(
    r"\b(?:eqs?\.?|equations?|tables?|figs?\.?|figures?|notebooks?|sections?|exercises?)\**\s*"
    rf"{_REF_NUM}(?:\s*(?:,|and|or|to|&|-|\u2013)\s*{_REF_NUM})*",
    re.I)


def _blank(text: str, pattern: re.Pattern) -> str:
    return pattern.sub(lambda m: " " * len(m.group(0)), text)


def prose_for_numbers(text: str) -> str:
    """``text`` with URLs, link targets, HTML tags, notebook file names, list markers, numbered headings
    and references blanked out (same length, so positions still point into ``text``)."""
    for pattern in (_URL_RE, _LINK_TARGET_RE, _HTML_TAG_RE, _NOTEBOOK_FILE_RE, _LIST_MARKER_RE,
                    _HEADING_NUMBER_RE, _REFERENCE_RE):
        text = _blank(text, pattern)
    return text


def canonical(token: str) -> str | None:
    """A number token as a canonical decimal string: "8,541" -> "8541", "1.0" -> "1", "0.50" -> "0.5"."""
    try:
        value = Decimal(re.sub(_SEP, "", token))
    except InvalidOperation:
        return None
    value = value.normalize()
    return format(value, "f")


def numbers_in(text: str) -> list[tuple[str, int]]:
    """(token, position) of every number of ``text`` that counts (references etc. removed)."""
    return [(m.group(0), m.start()) for m in NUMBER_RE.finditer(prose_for_numbers(text))]


def sentence_at(text: str, pos: int, limit: int = 240) -> str:
    """The sentence (or table row / list item) of ``text`` around ``pos``, whitespace collapsed."""
    boundary = re.compile(r"(?<!\beq\.)(?<!\beqs\.)(?<!Eq\.)(?<!Fig\.)(?<!e\.g\.)(?<!i\.e\.)(?<=[.!?])\s+(?=[A-Z*`$(\[])|\n\s*\n|\n(?=\s*(?:[*-]|\d+\.|#|\|)\s)")
    start = 0
    for m in boundary.finditer(text, 0, pos):
        start = m.end()
    m = boundary.search(text, pos)
    end = m.start() if m else len(text)
    sentence = " ".join(text[start:end].split())
    return sentence if len(sentence) <= limit else sentence[:limit] + " ..."


def _is_small_integer(token: str) -> bool:
    value = Decimal(canonical(token))
    return value == value.to_integral_value() and value <= 10


def method_numbers() -> set[str]:
    return {canonical(tok) for tok, _ in numbers_in(METHOD.read_text(encoding="utf-8"))}


def parameter_numbers(nb: dict) -> set[str]:
    """Numbers written in the `parameters` cell (code and comments), and the values of its constants
    (so `LR = 1e-3` allows "0.001")."""
    allowed = set()
    for _, cell in _tagged(nb, "parameters"):
        src = _source(cell)
        allowed |= {canonical(m.group(0)) for m in NUMBER_RE.finditer(src)}
        try:
            tree = ast.parse(src)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and type(node.value) in (int, float):
                allowed.add(canonical(repr(node.value)))
    allowed.discard(None)
    return allowed


def markdown_violations(nb: dict, allowed: set[str]) -> list[str]:
    found = []
    for index, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        text = _source(cell)
        for token, pos in numbers_in(text):
            if _is_small_integer(token) or canonical(token) in allowed:
                continue
            found.append(f"cell {index}: {token!r} in: {sentence_at(text, pos)}")
    return found


# --------------------------------------------------------------------------------------------------
# The README's course table
# --------------------------------------------------------------------------------------------------

def _norm(text: str) -> str:
    return " ".join(text.split())


def readme_course_rows() -> dict[str, str]:
    """notebook stem -> its README cell in the column "what its closing asserts check"."""
    rows, column = {}, None
    for line in README.read_text(encoding="utf-8").splitlines():
        if not line.lstrip().startswith("|"):
            column = None  # a table ended: only rows under the header with that column count
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if CLAIMS_COLUMN in cells:
            column = cells.index(CLAIMS_COLUMN)
            continue
        if column is None or set("".join(cells)) <= set("-: "):
            continue
        name = cells[0].strip("`")
        if re.fullmatch(r"\d{2}_\w+", name) and column < len(cells):
            rows[name] = cells[column]
    return rows


def claim_messages(nb: dict) -> list[str]:
    """The messages of the asserts of the `claims` cell, in order (fails when one has none)."""
    tagged = _tagged(nb, "claims")
    assert len(tagged) == 1, f"exactly one code cell tagged 'claims' (found {len(tagged)})"
    index, cell = tagged[0]
    assert "solution" not in _tags(cell), f"the claims cell (cell {index}) is also tagged 'solution'"
    tree = ast.parse(_source(cell))
    asserts = [n for n in ast.walk(tree) if isinstance(n, ast.Assert)]
    assert asserts, f"the claims cell (cell {index}) has no assert"
    messages = []
    for node in sorted(asserts, key=lambda n: (n.lineno, n.col_offset)):
        ok = isinstance(node.msg, ast.Constant) and isinstance(node.msg.value, str) and node.msg.value.strip()
        assert ok, (f"claims cell (cell {index}), line {node.lineno}: assert without a message string: "
                    f"{ast.unparse(node)}")
        messages.append(node.msg.value.strip())
    return messages


# --------------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------------

PROGRESS_RE = re.compile(r"\w+/s\]|s/\w+\]|%\||\r")
ABS_PATH_RE = re.compile(r"(?<![\w.~/-])(?:/work/|/home/|/tmp/|/root/|/Users/|[A-Za-z]:\\)")


def output_texts(cell: dict):
    """(kind, text) of every textual output of a code cell (images and widget state skipped)."""
    for out in cell.get("outputs", []):
        kind = out.get("output_type")
        if kind == "stream":
            yield f"stream {out.get('name', '')}", _joined(out.get("text", ""))
        elif kind in ("execute_result", "display_data"):
            for mime, data in out.get("data", {}).items():
                if mime.startswith("text/") or mime == "application/json":
                    yield mime, _joined(data)
        elif kind == "error":
            yield "error", "\n".join([out.get("ename", ""), out.get("evalue", "")] + out.get("traceback", []))


def _joined(text) -> str:
    if isinstance(text, list):
        return "".join(text)
    return text if isinstance(text, str) else json.dumps(text)


def _excerpt(text: str, pos: int, width: int = 60) -> str:
    return repr(text[max(0, pos - width): pos + width])


# --------------------------------------------------------------------------------------------------
# Exercises
# --------------------------------------------------------------------------------------------------

EXERCISE_RE = re.compile(r"\*\*Exercise (\d+)\.\*\*")
HINT_RE = re.compile(r"<details>\s*<summary>\s*Hint\s*</summary>.*?</details>", re.S)


def exercise_problems(nb: dict) -> list[str]:
    cells = nb["cells"]
    problems = []
    headings = [i for i, c in enumerate(cells)
                if c["cell_type"] == "markdown" and _source(c).lstrip().startswith("## Exercises")]
    if len(headings) != 1:
        return [f"expected one Markdown cell starting '## Exercises', found {len(headings)}"]
    exercises = [i for i, c in enumerate(cells)
                 if c["cell_type"] == "markdown" and EXERCISE_RE.match(_source(c).lstrip())]
    numbers = [int(EXERCISE_RE.match(_source(cells[i]).lstrip()).group(1)) for i in exercises]
    if not 2 <= len(exercises) <= 4:
        problems.append(f"2-4 exercises expected, found {len(exercises)} (cells {exercises})")
    if numbers != list(range(1, len(numbers) + 1)):
        problems.append(f"exercises numbered {numbers}, expected 1..{len(numbers)} in order")
    if exercises and exercises[0] < headings[0]:
        problems.append(f"exercise cell {exercises[0]} comes before the '## Exercises' cell {headings[0]}")
    for i in exercises:
        label = f"Exercise cell {i}"
        if not HINT_RE.search(_source(cells[i])):
            problems.append(f"{label}: no <details><summary>Hint</summary>...</details> block")
        if i + 1 >= len(cells) or cells[i + 1]["cell_type"] != "code" or "solution" not in _tags(cells[i + 1]):
            problems.append(f"{label}: the next cell is not a code cell tagged 'solution'")
            continue
        sol = cells[i + 1]
        if sol.get("metadata", {}).get("jupyter", {}).get("source_hidden") is not True:
            problems.append(f"solution cell {i + 1}: metadata jupyter.source_hidden is not true")
        try:
            has_assert = any(isinstance(n, ast.Assert) for n in ast.walk(ast.parse(_source(sol))))
        except SyntaxError as err:
            problems.append(f"solution cell {i + 1}: does not parse ({err})")
            has_assert = True
        if not has_assert:
            problems.append(f"solution cell {i + 1}: no assert")
        if sol.get("execution_count") is None:
            problems.append(f"solution cell {i + 1}: not executed in the committed outputs")
        if any(o.get("output_type") == "error" for o in sol.get("outputs", [])):
            problems.append(f"solution cell {i + 1}: has an error output")
        nxt = cells[i + 2] if i + 2 < len(cells) else None
        if nxt is not None and nxt["cell_type"] == "code" and "solution" in _tags(nxt):
            problems.append(f"{label}: followed by more than one solution cell")
    solutions = [i for i, _ in _tagged(nb, "solution")]
    stray = sorted(set(solutions) - {i + 1 for i in exercises})
    if stray:
        problems.append(f"solution cells {stray} follow no exercise")
    return problems


# --------------------------------------------------------------------------------------------------
# The tests
# --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def method_allowed() -> set[str]:
    return method_numbers()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_markdown_numbers_are_quoted_figures_or_knobs(path, method_allowed):
    nb = _load(path)
    problems = markdown_violations(nb, method_allowed | parameter_numbers(nb))
    assert not problems, (
        f"{path.name}: numbers in Markdown that are neither in docs/method.md, nor in the parameters cell, "
        "nor integers <= 10 or references (print measured numbers with display(Markdown(...))):\n  "
        + "\n  ".join(problems))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_readme_course_table_lists_the_closing_asserts(path):
    nb = _load(path)
    messages = claim_messages(nb)
    rows = readme_course_rows()
    assert path.stem in rows, f"README.md's course table has no row for `{path.stem}`"
    expected = "; ".join(messages)
    assert _norm(rows[path.stem]) == _norm(expected), (
        f"{path.name}: README.md column '{CLAIMS_COLUMN}' says\n  {rows[path.stem]!r}\n"
        f"but the asserts of the claims cell say\n  {expected!r}")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_outputs_free_of_progress_bars_and_machine_paths(path):
    nb = _load(path)
    problems = []
    for index, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        for kind, text in output_texts(cell):
            for pattern, what in ((PROGRESS_RE, "progress-bar residue"), (ABS_PATH_RE, "absolute path")):
                m = pattern.search(text)
                if m:
                    problems.append(f"cell {index} ({kind}): {what} {m.group(0)!r} in {_excerpt(text, m.start())}")
    # saved widget state (tqdm's notebook bars are widgets; a re-run without them leaves the old state behind)
    state = json.dumps(nb.get("metadata", {}).get("widgets", {}), ensure_ascii=False)
    for pattern, what in ((PROGRESS_RE, "progress-bar residue"), (ABS_PATH_RE, "absolute path")):
        m = pattern.search(state)
        if m:
            problems.append(f"notebook metadata 'widgets': {what} {m.group(0)!r} in {_excerpt(state, m.start())} "
                            "(delete the stale widget state)")
    assert not problems, f"{path.name}:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_exercises_have_hints_and_executed_hidden_solutions(path):
    problems = exercise_problems(_load(path))
    assert not problems, f"{path.name}:\n  " + "\n  ".join(problems)


# --- the rules themselves -------------------------------------------------------------------------

def test_number_reading_rules():
    tokens = lambda text: [canonical(t) for t, _ in numbers_in(text)]  # noqa: E731
    assert tokens("VGGFace2 has 8,541 people; tf_efficientnet_b0, RexNet-150, L2, $x_1$") == ["8541"]
    assert tokens("134 415 Happiness photos, 5_000_000, 0.50 and 1.0") == ["134415", "5000000", "0.5", "1"]
    assert tokens("eq. (2), eqs. (1) and (2), Table 1, Fig. 1, notebook 04, notebooks 05, 06 and 07") == []
    assert tokens("**Exercise 3.** see `00_overview_and_data.ipynb` and notebooks 02-04") == []
    assert tokens("## 3. Title\n1. first\n2) second") == []
    assert tokens("[badge](https://x.org/a/123/b.ipynb) and https://y.org/v1.2.345 and <img width=300>") == []
    assert tokens("accuracy 18 % after `EPOCHS = 60` and 45–55 %") == ["18", "60", "45", "55"]
    assert tokens("Table 12 and 97.1 ± 2.9; Table 1, 97.1") == ["97.1", "2.9", "97.1"]


def test_allow_list_and_sentence_reporting():
    nb = {"cells": [
        {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": "LR = 1e-3  # paper: 3\nN = 160\n"},
        {"cell_type": "markdown", "metadata": {},
         "source": "We train at $10^{-3}$ with N = 160 faces. It scored 93.8 here. Then 0.731 on LFW.\n"},
    ]}
    problems = markdown_violations(nb, method_numbers() | parameter_numbers(nb))
    assert len(problems) == 1 and "'0.731'" in problems[0] and "Then 0.731 on LFW." in problems[0]
    assert "0.001" in parameter_numbers(nb)


def test_output_patterns():
    assert PROGRESS_RE.search("synth lfw:   0%|          | 0/181 [00:00<?, ?img/s]")
    assert PROGRESS_RE.search("12/40 [00:03<00:09, 3.1it/s]") and PROGRESS_RE.search("a\rb")
    assert not PROGRESS_RE.search("accuracy 93.1% | recall 80%")
    for bad in ("/work/main/data", "see /home/me/x", "'/tmp/abc'", "C:\\Users\\me", "/Users/me"):
        assert ABS_PATH_RE.search(bad), bad
    for good in ("data/synth/lfw-n60", "https://example.org/tmp/x", "~/tmp/x", "notebooks/work/x"):
        assert not ABS_PATH_RE.search(good), good


def test_claims_and_exercise_checks_on_a_small_notebook():
    def code(src, tags=(), hidden=False, count=1, outputs=()):
        meta = {"tags": list(tags)} | ({"jupyter": {"source_hidden": True}} if hidden else {})
        return {"cell_type": "code", "metadata": meta, "source": src, "execution_count": count,
                "outputs": list(outputs)}

    def md(src):
        return {"cell_type": "markdown", "metadata": {}, "source": src}

    hint = "\n<details><summary>Hint</summary>\nlook\n</details>"
    nb = {"cells": [code('assert 1 < 2, "one below two"\nassert 2 < 3, "two below three"', ["claims"]),
                    md("## Exercises"),
                    md("**Exercise 1.** do it" + hint), code("assert True", ["solution"], hidden=True),
                    md("**Exercise 2.** again" + hint), code("assert True", ["solution"], hidden=True)]}
    assert claim_messages(nb) == ["one below two", "two below three"]
    assert exercise_problems(nb) == []
    nb["cells"][5] = code("x = 1", ["solution"], count=None, outputs=[{"output_type": "error"}])
    assert len(exercise_problems(nb)) == 4  # not hidden, no assert, not executed, error output
    nb["cells"][0] = code('assert 1 < 2, "fine"\nassert 2 < 3', ["claims"])
    with pytest.raises(AssertionError, match="without a message"):
        claim_messages(nb)

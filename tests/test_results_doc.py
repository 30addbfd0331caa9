"""docs/results.md is generated from the benchmarks' JSON (``make results``), and every benchmark can be rendered.

* the committed page equals a fresh rendering of the committed ``benchmarks/results/*.json``;
* every ``benchmarks/bench_NAME.py`` takes ``--json`` and has a renderer ``NAME`` in make_results.py and a
  block on the page, and every renderer belongs to a script;
* every renderer renders a small sample of its script's JSON (``tests/fixtures/bench/NAME.json``, written
  by the script's quick mode, or a committed result) into a non-empty block that names its script.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "bench"
sys.path.insert(0, str(BENCH))
make_results = pytest.importorskip("make_results")

SCRIPTS = sorted(p.stem[len("bench_"):] for p in BENCH.glob("bench_*.py"))


def test_results_doc_is_generated_from_the_committed_json():
    run = subprocess.run([sys.executable, str(BENCH / "make_results.py"), "--check"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert list((BENCH / "results").glob("*.json")), "no committed benchmark results"


def test_every_benchmark_script_writes_json_and_has_a_renderer_and_a_block():
    assert SCRIPTS and set(SCRIPTS) == set(make_results.RENDERERS)
    doc = make_results.DOC.read_text(encoding="utf-8")
    for name in SCRIPTS:
        assert '"--json"' in (BENCH / f"bench_{name}.py").read_text(encoding="utf-8"), name
        assert f"<!-- generated: {name} -->\n" in doc and f"<!-- end generated: {name} -->" in doc, name


def sample(name: str) -> dict:
    path = FIXTURES / f"{name}.json"
    if not path.is_file():
        path = BENCH / "results" / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_renderer_renders_a_sample_of_its_scripts_json(name):
    text = make_results.RENDERERS[name](sample(name))
    assert text.endswith("\n") and f"benchmarks/bench_{name}.py" in text
    assert "<!--" not in text  # a rendering cannot close or open a block


def test_a_block_without_json_must_say_it_is_hand_recorded():
    name = SCRIPTS[0]
    blocks = {k: v for k, v in make_results.render_all().items() if k != name}  # as if its JSON were missing
    doc = make_results.DOC.read_text(encoding="utf-8")
    start, end = f"<!-- generated: {name} -->\n", f"<!-- end generated: {name} -->"
    head, rest = doc.split(start, 1)
    tail = rest.split(end, 1)[1]
    with pytest.raises(SystemExit, match="hand-recorded"):
        make_results.updated(head + start + "| a figure | 1.0 |\n" + end + tail, blocks)
    marked = head + start + make_results.HAND_RECORDED + "\n\n| a figure | 1.0 |\n" + end + tail
    assert make_results.updated(marked, blocks) == marked  # kept as it is, saying what it is

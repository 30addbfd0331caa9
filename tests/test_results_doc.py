"""docs/results.md's generated blocks equal a fresh rendering of the committed benchmark JSON."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_results_doc_is_generated_from_the_committed_json():
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "make_results.py"), "--check"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert list((ROOT / "benchmarks" / "results").glob("*.json")), "no committed benchmark results"

"""The decision rules behind the README's training claims (benchmarks/bench_training.py)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
bench = pytest.importorskip("bench_training")


def test_confused_pairs_are_symmetric_row_normalised_and_flag_the_named_pairs():
    classes = ["Fear", "Surprise", "Happiness"]
    cm = [[6, 4, 0],      # Fear: 40% read as Surprise
          [1, 9, 0],      # Surprise: 10% read as Fear
          [0, 3, 27]]     # Happiness: 10% read as Surprise
    pairs = bench.confused_pairs(cm, classes, k=3)
    assert [p["pair"] for p in pairs] == ["Fear/Surprise", "Surprise/Happiness", "Fear/Happiness"]
    assert pairs[0]["confusion"] == pytest.approx(0.5) and pairs[0]["named"]
    assert pairs[1]["confusion"] == pytest.approx(0.1) and not pairs[1]["named"]


def _run(acc=0.6, wall=90.0, named=(True, True, True)):
    return {"wall_s": wall, "prior_corrected": {"balanced_accuracy": acc, "top_confused_pairs": [
        {"pair": f"p{i}", "confusion": 0.5, "named": n} for i, n in enumerate(named)]}}


def test_claim_a_needs_the_accuracy_band_the_time_and_three_named_pairs():
    assert bench.scratch_claim_holds(_run())
    assert not bench.scratch_claim_holds(_run(acc=0.54))
    assert not bench.scratch_claim_holds(_run(acc=0.96))
    assert not bench.scratch_claim_holds(_run(wall=181))
    assert not bench.scratch_claim_holds(_run(named=(True, True, False)))

"""benchmarks/bench_peers.py runs to the end in quick mode (so it cannot rot) and its figures hold together.

The script installs EmotiEffLib (the paper author's library) with pip into build/peers/ the
first time and reuses it afterwards; without a package index and without that folder it
exits with code 77 and the test is skipped with its reason.  No timing is checked here: the
benchmark's figures come from full runs on a quiet machine.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "bench_peers.py"
EXIT_SKIP = 77
FACELAB_METHODS = ("facelab_default", "facelab_fp32", "facelab_onnx")
PEER_METHODS = ("eel_torch_one", "eel_torch_list", "eel_torch_list_nograd", "eel_onnx_one", "eel_onnx_list")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench_peers") / "peers.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--json", str(out)], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"bench_peers.py --quick did not finish in {exc.timeout} s")
    if proc.returncode == EXIT_SKIP:
        pytest.skip(f"EmotiEffLib cannot be installed here: {proc.stderr.strip()}")
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads(out.read_text()), proc.stdout


def test_quick_mode_writes_every_figure(quick_run):
    res, stdout = quick_run
    assert {"settings", "machine", "peer", "crops", "photos", "detection", "cpu_use", "load_average"} <= set(res)
    assert res["settings"]["quick"] is True
    assert "QUICK MODE" in stdout and "not measurements" in stdout
    machine = res["machine"]
    assert {"model", "logical_cores", "flags"} <= set(machine["cpu"])
    assert {"avx512_bf16", "amx_bf16"} <= set(machine["cpu"]["flags"])
    assert machine["versions"]["emotiefflib"] == "1.1.1" and machine["versions"]["torch"]
    crops = res["crops"]
    assert set(crops["rates"]) == set(PEER_METHODS) | set(FACELAB_METHODS)
    for rate in crops["rates"].values():
        assert rate["per_s"] > 0 and rate["ratio_to_peer_fastest"] > 0
    assert crops["peer_fastest"] in PEER_METHODS
    assert crops["rates"][crops["peer_fastest"]]["ratio_to_peer_fastest"] == pytest.approx(1.0)
    assert set(crops["agreement"]) == (set(PEER_METHODS) | set(FACELAB_METHODS)) - {crops["reference"]}
    photos = res["photos"]
    assert photos["rates"]["facelab"]["ratio_to_publisher"] > 0
    assert photos["faces_found"]["publisher"] > 0 and photos["faces_found"]["facelab"] > 0
    detection = res["detection"]
    assert detection["mtcnn_full"]["recall_40px"] > 0
    if detection["facelab_available"]:
        assert detection["facelab_detect_size"]["ratio_to_full"] > 0


def test_facelab_gives_the_publishers_answers(quick_run):
    """Same network, same faces: every facelab method picks EmotiEffLib's class wherever the
    reference is decided (its two best classes further apart than the tolerance), and its
    probabilities stay within the tolerance of that precision."""
    res, _ = quick_run
    agreement = res["crops"]["agreement"]
    for key in FACELAB_METHODS:
        a = agreement[key]
        assert a["class_agreement_decided"] >= 0.99, (key, a)
        assert a["decided_faces"] >= 0.5 * a["faces"], (key, a)
        assert a["within_tolerance"] >= 0.99, (key, a)
    # the peer's own calls agree with each other (same engine: exactly)
    for key in ("eel_torch_list", "eel_torch_list_nograd"):
        assert agreement[key]["class_agreement"] == 1.0
        assert agreement[key]["max_abs_prob_diff"] < 1e-4

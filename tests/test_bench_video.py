"""benchmarks/bench_video.py runs to the end in quick mode (a tiny crowd clip; no timing claims)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_bench_video_quick_mode(tmp_path):
    out = tmp_path / "video.json"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_video.py"), "--quick", "--threads", "1",
                          "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(out.read_text())
    course = result["networks"]["course"]
    assert result["frames"] == 50 and course["frames"] == 50 and course["faces"] > 0
    assert course["tracking"]["people"] == 3 and course["tracking"]["coverage"] > 0.5
    assert course["real_time_factor"] > 0 and result["long"]["rss_ratio"] > 0

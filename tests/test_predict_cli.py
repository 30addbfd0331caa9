"""``facelab predict``: images, folders and videos; bad inputs become entries, never tracebacks."""
from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from facelab.checkpoints import save_checkpoint
from facelab.apps.cli import main
from test_analyze import face_world, tiny_model, write_clip

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return save_checkpoint(tiny_model(), tmp_path_factory.mktemp("ckpt") / "tiny")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Two face photos, a folder with two more, a photo without a face, and a clip."""
    root = tmp_path_factory.mktemp("photos")
    images, _, _ = face_world()
    paths = {}
    for k, name in enumerate(("one.jpg", "two.png")):
        Image.fromarray(images[k]).save(root / name)
        paths[name] = root / name
    folder = root / "album"
    folder.mkdir()
    Image.fromarray(images[2]).save(folder / "a.jpg")
    Image.fromarray(images[3]).save(folder / "b.jpg")
    paths["album"] = folder
    Image.new("RGB", (120, 90), (70, 130, 180)).save(root / "sky.jpg")
    paths["sky.jpg"] = root / "sky.jpg"
    paths["clip.mp4"] = write_clip(root / "clip.mp4", [images[4], images[5], images[6]])
    return paths


def _bad(tmp_path):
    bad_inputs = pytest.importorskip("bad_inputs")
    return bad_inputs.write_bad_images(tmp_path / "bad")


def test_predict_json_has_one_entry_per_failed_or_faceless_input(ckpt, photos, tmp_path, capsys):
    bad = _bad(tmp_path)
    truncated_video = tmp_path / "broken.mp4"
    truncated_video.write_bytes(photos["clip.mp4"].read_bytes()[:200])
    inputs = [photos["one.jpg"], photos["album"], photos["sky.jpg"], photos["clip.mp4"],
              *bad.values(), truncated_video, photos["two.png"]]
    out = tmp_path / "out.json"
    code = main(["predict", *map(str, inputs), "--model", str(ckpt), "--json", str(out), "--precision", "fp32"])
    captured = capsys.readouterr()
    assert code == 2
    entries = json.loads(out.read_text())
    df = pd.DataFrame(entries)
    names = list(df["name"])
    expected_names = ([str(photos["one.jpg"]), str(photos["album"] / "a.jpg"), str(photos["album"] / "b.jpg"),
                       str(photos["sky.jpg"]), str(photos["clip.mp4"])] + [str(p) for p in bad.values()]
                      + [str(truncated_video), str(photos["two.png"])])
    assert list(dict.fromkeys(names)) == expected_names  # input order kept, nothing missing
    assert len(entries) >= len(expected_names)
    failed = df[df["status"] == "failed"]
    assert sorted(failed["name"]) == sorted([str(p) for p in bad.values()] + [str(truncated_video)])
    assert failed.groupby("name").size().max() == 1  # exactly one entry per failed input
    assert (failed["error"].str.len() > 0).all() and failed["x1"].isna().all()
    sky = df[df["name"] == str(photos["sky.jpg"])]
    assert len(sky) == 1 and sky.iloc[0]["status"] == "no face"
    clip = df[df["name"] == str(photos["clip.mp4"])]
    assert sorted(set(clip["frame"])) == [0, 1, 2] and (clip["status"] == "ok").all()
    for name in (photos["one.jpg"], photos["two.png"], photos["album"] / "a.jpg"):
        rows = df[df["name"] == str(name)]
        assert (rows["status"] == "ok").all() and rows["emotion"].notna().all() and rows["age"].between(1, 100).all()
    # stderr: one line per failure, naming the input, and no traceback
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == len(failed)
    assert all(any(line.startswith(f"facelab: {n}: ") for line in lines) for n in failed["name"])
    assert "Traceback" not in captured.err
    assert "failed" in captured.out  # the summary line


def test_predict_subprocess_csv_to_stdout(ckpt, photos, tmp_path):
    """The real command line: bad inputs -> exit code 2, one stderr line each, no traceback."""
    missing = tmp_path / "missing.jpg"
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo\n")
    annotated = tmp_path / "annotated"
    result = subprocess.run(
        [sys.executable, "-m", "facelab.apps.cli", "predict", str(photos["one.jpg"]), str(missing), str(text),
         "--model", str(ckpt), "--batch-size", "4", "--annotate", str(annotated)],
        capture_output=True, text=True, cwd=REPO, timeout=600,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    err = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(err) == 2
    assert err[0].startswith(f"facelab: {missing}: ") and "not found" in err[0]
    assert err[1].startswith(f"facelab: {text}: ") and "text" in err[1]
    df = pd.read_csv(io.StringIO(result.stdout))
    assert list(dict.fromkeys(df["name"])) == [str(photos["one.jpg"]), str(missing), str(text)]
    assert list(df.groupby("name").size()[[str(missing), str(text)]]) == [1, 1]
    assert (df[df["name"] == str(photos["one.jpg"])]["status"] == "ok").all()
    drawn = annotated / "one.jpg"
    assert drawn.is_file() and Image.open(drawn).size == Image.open(photos["one.jpg"]).size


def test_predict_all_good_exits_0_and_writes_csv(ckpt, photos, tmp_path, capsys):
    out = tmp_path / "out.csv"
    code = main(["predict", str(photos["one.jpg"]), str(photos["sky.jpg"]), "--model", str(ckpt),
                 "--csv", str(out), "--precision", "fp32"])
    captured = capsys.readouterr()
    assert code == 0 and captured.err == ""
    df = pd.read_csv(out)
    assert list(df.groupby("name").size().index) == sorted([str(photos["one.jpg"]), str(photos["sky.jpg"])])
    assert {"emotion", "emotion_Happiness", "age", "gender", "gender_prob", "race", "race_Asian",
            "status", "error", "frame"} <= set(df.columns)


def test_predict_onnx_backend_and_emotion_model(ckpt, photos, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    emotion = save_checkpoint(tiny_model(attributes=False, seed=3), tmp_path / "emotion")
    code = main(["predict", str(photos["one.jpg"]), "--model", str(ckpt), "--emotion-model", str(emotion),
                 "--backend", "onnx", "--json"])
    captured = capsys.readouterr()
    assert code == 0
    entries = json.loads(captured.out)
    assert entries and all(e["status"] == "ok" for e in entries)


def test_predict_bad_checkpoint_and_usage(photos, tmp_path, capsys):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 10)
    assert main(["predict", str(photos["one.jpg"]), "--model", str(junk)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("facelab: error:") and "junk.safetensors" in err
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", str(photos["one.jpg"])])  # --model missing
    assert exit_info.value.code == 1

"""`facelab detect`: one JSON entry per input, named errors, exit codes, no tracebacks."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from facelab.apps.cli import main

import bad_inputs

ASTRONAUT_BOX = (181, 62, 268, 172)
FACELAB = Path(sys.executable).parent / "facelab"


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # MTCNN's small ops: 1 thread is much faster on a busy 2-core box
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("detect")
    corpus = bad_inputs.write_corpus(root / "corpus")
    astronaut = root / "astronaut.png"
    Image.fromarray(bad_inputs.sample_photo()).save(astronaut)
    return {"astronaut": astronaut, **corpus}


def _run_json(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def test_astronaut_json(capsys, files):
    code, doc, err = _run_json(capsys, ["detect", str(files["astronaut"]), "--json"])
    assert code == 0 and err == ""
    assert isinstance(doc, list) and len(doc) == 1
    entry = doc[0]
    assert entry["path"] == str(files["astronaut"]) and set(entry) == {"path", "faces"}
    (face,) = entry["faces"]
    assert set(face) == {"box", "prob", "landmarks"}
    assert face["prob"] > 0.99
    assert np.abs(np.subtract(face["box"], ASTRONAUT_BOX)).max() <= 12
    assert np.asarray(face["landmarks"]).shape == (5, 2)


def test_corpus_gives_one_entry_per_input_with_named_errors(capsys, files):
    names = ["astronaut", *sorted(bad_inputs.BAD_IMAGE_ERRORS), *sorted(bad_inputs.ODD_IMAGE_SIZES)]
    argv = ["detect", "--json", *[str(files[n]) for n in names]]
    code, doc, err = _run_json(capsys, argv)
    assert code == 2
    assert len(doc) == len(names)  # N inputs -> N entries, in order
    by_name = dict(zip(names, doc))
    for name, entry in by_name.items():
        assert entry["path"] == str(files[name])
    for name, error_class in bad_inputs.BAD_IMAGE_ERRORS.items():
        assert set(by_name[name]) == {"path", "error"}, name
        assert by_name[name]["error"].startswith(error_class + ":"), (name, by_name[name]["error"])
        assert bad_inputs.BAD_IMAGE_WORDS[name].lower() in by_name[name]["error"].lower()
    for name in ("astronaut", *bad_inputs.ODD_IMAGE_SIZES):
        assert "faces" in by_name[name], name
    assert len(by_name["astronaut"]["faces"]) == 1
    assert by_name["one_pixel"]["faces"] == [] and by_name["animated_gif"]["faces"] == []
    lines = err.strip().splitlines()
    assert len(lines) == len(bad_inputs.BAD_IMAGE_ERRORS)  # one stderr line per failure
    assert all(line.startswith("facelab: ") for line in lines)
    assert "Traceback" not in err


def test_folder_argument_expands_to_its_images(capsys, tmp_path, files):
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    photo = bad_inputs.sample_photo(256)
    Image.fromarray(photo).save(folder / "b.jpg")
    Image.fromarray(photo[:, ::-1]).save(folder / "sub" / "a.png")
    (folder / "labels.txt").write_text("not an image")
    empty = tmp_path / "empty"
    empty.mkdir()
    code, doc, err = _run_json(capsys, ["detect", "--json", str(folder), str(empty)])
    assert [e["path"] for e in doc] == [str(folder / "b.jpg"), str(folder / "sub" / "a.png"), str(empty)]
    assert [len(e["faces"]) for e in doc[:2]] == [1, 1]
    assert doc[2]["error"].startswith("ImageDecodeError:") and "no image files" in doc[2]["error"]
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_table_output_and_annotations(capsys, tmp_path, files):
    out_dir = tmp_path / "annotated"
    code = main(["detect", str(files["astronaut"]), str(files["one_pixel"]), "--annotate", str(out_dir)])
    out, err = capsys.readouterr()
    assert code == 0
    rows = out.strip().splitlines()
    assert rows[0].split() == ["face", "prob", "x1", "y1", "x2", "y2", "path"]
    assert str(files["astronaut"]) in rows[1] and "1.000" in rows[1]
    assert "no face" in rows[2]
    written = sorted(p.name for p in out_dir.iterdir())
    assert written == ["astronaut.png", "one_pixel.png"]
    drawn = np.asarray(Image.open(out_dir / "astronaut.png"))
    assert drawn.shape == (512, 512, 3) and (drawn != bad_inputs.sample_photo()).any()


def test_detector_options(capsys, files):
    code, doc, _ = _run_json(capsys, ["detect", "--json", "--threshold", "1", str(files["astronaut"])])
    assert code == 0 and doc[0]["faces"] == []  # nobody is 100% sure
    code, doc, _ = _run_json(capsys, ["detect", "--json", "--min-face-size", "600", str(files["astronaut"])])
    assert code == 0 and doc[0]["faces"] == []  # the whole photo is smaller than 600 px


@pytest.mark.parametrize("argv", [
    ["detect"],
    ["detect", "x.jpg", "--threshold", "2"],
    ["detect", "x.jpg", "--threshold", "high"],
    ["detect", "x.jpg", "--min-face-size", "3"],
    ["detect", "x.jpg", "--no-such-option"],
])
def test_usage_errors_exit_1(capsys, argv):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 1
    assert "usage:" in capsys.readouterr().err


def test_console_script_never_prints_a_traceback(files, tmp_path):
    paths = [str(files[n]) for n in ("astronaut", *sorted(bad_inputs.BAD_IMAGE_ERRORS))]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([str(FACELAB), "detect", "--json", *paths], capture_output=True, text=True,
                          env=env, timeout=300, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    doc = json.loads(proc.stdout)
    assert len(doc) == len(paths)
    assert len(doc[0]["faces"]) == 1
    errors = [e["error"].split(":")[0] for e in doc[1:]]
    assert errors == [bad_inputs.BAD_IMAGE_ERRORS[n] for n in sorted(bad_inputs.BAD_IMAGE_ERRORS)]
    assert len(proc.stderr.strip().splitlines()) == len(paths) - 1

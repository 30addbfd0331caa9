"""facelab prepare: same layout, largest face, failures.csv, resumable and byte-identical."""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import facelab.data.prepare as P
from facelab.apps.cli import main
from facelab.errors import DatasetFormatError, InvalidInputError
from facelab.faces import crop_faces, detect_faces, largest_face
from facelab.data.prepare import prepare_dataset

import bad_inputs

SETTINGS = dict(policy="tight", size=48, chunk_size=3, workers=1, progress=False)
FACE_IMAGES = 11  # images with a face in the dataset below


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # same thread count as the OMP_NUM_THREADS=1 subprocess below
    yield
    torch.set_num_threads(before)


def make_dataset(root: Path) -> Path:
    """A small dataset in class folders: 11 faces (3 sizes), 1 blank, 1 broken, labels, a hidden file."""
    photo = bad_inputs.sample_photo()
    rng = np.random.default_rng(0)
    for i in range(FACE_IMAGES):
        img = Image.fromarray(photo[:, ::-1] if i % 2 else photo).rotate(float(rng.uniform(-8, 8)))
        size = (160, 160) if i < 7 else (200, 150) if i < 10 else (180, 180)
        cls = root / ("Happy" if i % 3 else "Sad")
        cls.mkdir(parents=True, exist_ok=True)
        if i == 10:
            img.resize(size).save(cls / f"face_{i:02d}.png")
        else:
            img.resize(size).save(cls / f"face_{i:02d}.jpg", quality=90)
    Image.new("RGB", (160, 160), (120, 130, 140)).save(root / "Sad" / "blank.jpg")
    (root / "Happy" / "broken.jpg").write_bytes(b"<html>not a photo</html>")
    (root / "labels.txt").write_text("Happy/face_01.jpg 1\nSad/face_00.jpg 0\n")
    (root / "meta").mkdir()
    (root / "meta" / "list.csv").write_text("path,label\n")
    (root / ".DS_Store").write_bytes(b"\x00\x01")
    return root


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("dataset"))


@pytest.fixture(scope="module")
def reference(dataset, tmp_path_factory):
    """One uninterrupted run with SETTINGS."""
    out = tmp_path_factory.mktemp("reference") / "crops"
    report = prepare_dataset(dataset, out, **SETTINGS)
    return out, report


def test_same_layout_crops_failures_and_copies(dataset, reference):
    out, report = reference
    assert (report.images, report.done, report.skipped_existing, report.failed) == (13, FACE_IMAGES, 0, 2)
    assert report.copied == 2
    files = tree(out)
    for i in range(FACE_IMAGES):
        rel = f"{'Happy' if i % 3 else 'Sad'}/face_{i:02d}.{'png' if i == 10 else 'jpg'}"
        with Image.open(out / rel) as img:
            assert img.size == (48, 48) and img.mode == "RGB", rel
            assert img.format == ("PNG" if rel.endswith(".png") else "JPEG")
    assert files["labels.txt"] == (dataset / "labels.txt").read_bytes()
    assert files["meta/list.csv"] == (dataset / "meta" / "list.csv").read_bytes()
    assert ".DS_Store" not in files and "Sad/blank.jpg" not in files and "Happy/broken.jpg" not in files
    with open(out / "failures.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["path", "reason"] and [r[0] for r in rows[1:]] == ["Happy/broken.jpg", "Sad/blank.jpg"]
    assert rows[1][1].startswith("ImageDecodeError:") and "HTML" in rows[1][1]
    assert rows[2][1].startswith("no face found")
    assert report.failures_csv == out / "failures.csv" and report.failures == [tuple(r) for r in rows[1:]]


def test_crop_is_the_tight_crop_of_the_largest_face(dataset, reference):
    out, _ = reference
    image = np.asarray(Image.open(dataset / "Happy" / "face_10.png"))
    face = largest_face(detect_faces(image)[0])
    expected = crop_faces(image, [face.box], size=48).round().clamp(0, 255).to(torch.uint8)
    written = torch.from_numpy(np.array(Image.open(out / "Happy" / "face_10.png"))).permute(2, 0, 1)
    assert torch.equal(written, expected[0]) or (written.int() - expected[0].int()).abs().max() <= 1


def test_resume_after_an_exception_equals_uninterrupted_run(dataset, reference, tmp_path, monkeypatch):
    out = tmp_path / "crops"
    real_save, calls = P._save_atomic, []

    def save_then_stop(target, crop):
        if len(calls) == 5:
            raise KeyboardInterrupt  # like Ctrl-C in the middle of the run
        calls.append(target)
        real_save(target, crop)

    monkeypatch.setattr(P, "_save_atomic", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset(dataset, out, **SETTINGS)
    monkeypatch.setattr(P, "_save_atomic", real_save)
    written = [p for p in out.rglob("face_*") if p.is_file()]
    assert len(written) == 5
    stale = out / "Happy" / ".face_99.jpg.facelab-tmp123"  # what a killed run can leave behind
    stale.write_bytes(b"half a file")
    report = prepare_dataset(dataset, out, **SETTINGS)
    assert (report.done, report.skipped_existing, report.failed) == (FACE_IMAGES - 5, 5, 2)
    assert tree(out) == tree(reference[0])  # same files, same bytes


@pytest.mark.slow  # a fresh interpreter imports torch
def test_resume_after_kill_equals_uninterrupted_run(dataset, reference, tmp_path):
    out = tmp_path / "crops"
    script = textwrap.dedent(f"""
        import time
        import facelab.data.prepare as P
        real = P._save_atomic
        def slow(target, crop):
            real(target, crop)
            time.sleep(0.5)  # give the test time to kill us mid-run
        P._save_atomic = slow
        if __name__ == "__main__":
            P.prepare_dataset({str(dataset)!r}, {str(out)!r}, policy="tight", size=48, chunk_size=3,
                              workers=1, progress=False)
    """)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and len(list(out.rglob("face_*"))) < 3 and proc.poll() is None:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    n_before = len([p for p in out.rglob("face_*") if p.is_file()])
    assert 3 <= n_before < FACE_IMAGES  # really interrupted mid-way
    report = prepare_dataset(dataset, out, **SETTINGS)
    assert report.skipped_existing == n_before and report.done == FACE_IMAGES - n_before
    assert tree(out) == tree(reference[0])


def test_known_failures_are_not_retried_unless_asked(dataset, reference, tmp_path, monkeypatch):
    out = tmp_path / "crops"
    prepare_dataset(dataset, out, **SETTINGS)

    def no_detection(*a, **k):
        raise AssertionError("nothing left to detect")

    monkeypatch.setattr(P, "detect_faces", no_detection)
    again = prepare_dataset(dataset, out, **SETTINGS)
    assert (again.done, again.skipped_existing, again.failed) == (0, FACE_IMAGES, 2)
    monkeypatch.undo()
    retried = prepare_dataset(dataset, out, **SETTINGS, retry_failed=True)
    assert retried.failed == 2 and tree(out) == tree(reference[0])


def test_center_policy_needs_no_detector(dataset, tmp_path, monkeypatch):
    def no_detection(*a, **k):
        raise AssertionError("the centre crop must not run MTCNN")

    monkeypatch.setattr(P, "detect_faces", no_detection)
    out = tmp_path / "center"
    report = prepare_dataset(dataset, out, policy="center", size=32, workers=1, progress=False)
    assert report.done == FACE_IMAGES + 1 and report.failed == 1  # the blank photo is cropped too
    image = np.asarray(Image.open(dataset / "Happy" / "face_10.png"))
    h, w = image.shape[:2]
    side = min(h, w)
    expected = crop_faces(image, [((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)], size=32)
    written = np.asarray(Image.open(out / "Happy" / "face_10.png")).astype(np.float32)
    assert np.abs(written - expected[0].permute(1, 2, 0).numpy()).max() <= 0.5 + 1e-4


def test_margin_crops_from_the_tight_boxes_equal_a_new_detection(dataset, reference, tmp_path, monkeypatch):
    """boxes.csv keeps every detector box; boxes_from reuses them: the same bytes as detecting again."""
    tight, _ = reference
    with open(tight / P.BOXES_FILE, newline="") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == P.BOX_COLUMNS and len(rows) == 1 + FACE_IMAGES
    margin = {**SETTINGS, "policy": "margin"}
    detected = prepare_dataset(dataset, tmp_path / "detected", **margin)

    def no_detection(*a, **k):
        raise AssertionError("boxes_from must not run MTCNN")

    monkeypatch.setattr(P, "detect_faces", no_detection)
    reused = prepare_dataset(dataset, tmp_path / "reused", **margin, boxes_from=tight)
    assert (reused.done, reused.failed) == (detected.done, detected.failed) == (FACE_IMAGES, 2)
    assert tree(tmp_path / "reused") == tree(tmp_path / "detected")
    with pytest.raises(InvalidInputError, match="other detector settings"):
        prepare_dataset(dataset, tmp_path / "x", **margin, min_face_size=40, boxes_from=tight)
    prepare_dataset(dataset, tmp_path / "center", **{**SETTINGS, "policy": "center"})
    with pytest.raises(InvalidInputError, match="no boxes.csv"):
        prepare_dataset(dataset, tmp_path / "y", **margin, boxes_from=tmp_path / "center")


def test_settings_are_checked(dataset, reference, tmp_path):
    with pytest.raises(InvalidInputError, match="size=48"):
        prepare_dataset(dataset, reference[0], **{**SETTINGS, "size": 64})
    with pytest.raises(InvalidInputError, match="must differ"):
        prepare_dataset(dataset, dataset, **SETTINGS)
    with pytest.raises(InvalidInputError, match="tight, margin, center"):
        prepare_dataset(dataset, tmp_path / "x", policy="square")
    with pytest.raises(DatasetFormatError, match="not found"):
        prepare_dataset(tmp_path / "nope", tmp_path / "y")


def test_output_folder_inside_the_dataset_is_skipped(tmp_path):
    root = tmp_path / "ds"
    (root / "a").mkdir(parents=True)
    Image.fromarray(bad_inputs.sample_photo(64)).save(root / "a" / "x.png")
    out = root / "crops"
    first = prepare_dataset(root, out, policy="center", size=16, progress=False)
    second = prepare_dataset(root, out, policy="center", size=16, progress=False)
    assert (first.images, first.done) == (1, 1) and (second.images, second.skipped_existing) == (1, 1)
    assert not (out / "crops").exists()


@pytest.mark.slow  # two spawned worker processes import torch
def test_two_workers_give_the_same_bytes(dataset, tmp_path):
    one = prepare_dataset(dataset, tmp_path / "one", policy="center", size=24, chunk_size=4, workers=1,
                          progress=False)
    two = prepare_dataset(dataset, tmp_path / "two", policy="center", size=24, chunk_size=4, workers=2,
                          progress=False)
    assert (one.done, one.failed) == (two.done, two.failed) == (FACE_IMAGES + 1, 1)
    assert tree(tmp_path / "one") == tree(tmp_path / "two")


def test_cli_prepare(dataset, tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(["prepare", str(dataset), "--out", str(out), "--policy", "margin", "--margin", "0.1",
                 "--size", "40", "--quiet"])
    stdout, stderr = capsys.readouterr()
    assert code == 2  # two images failed
    lines = stderr.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("facelab: ") for line in lines)
    assert "broken.jpg" in lines[0] and "blank.jpg" in lines[1]
    assert f"{FACE_IMAGES} crops written" in stdout
    with Image.open(out / "Sad" / "face_00.jpg") as img:
        assert img.size == (40, 40)
    with pytest.raises(SystemExit) as info:
        main(["prepare", str(dataset)])  # --out missing
    assert info.value.code == 1

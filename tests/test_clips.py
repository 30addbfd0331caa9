"""Synthetic video clips: real files that PyAV decodes, with the right frame counts
and labels, byte-identical for the same seed, streamed frame by frame."""
import hashlib
from collections import Counter

import av
import numpy as np
import pytest

from facelab.data import datasets as D
from facelab import labels as L
from facelab.errors import InvalidInputError
from facelab.synth import clips as C
from facelab.synth import writers as W
from facelab.synth.people import sample_person


def _decode(path):
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(stream)]
        return frames, float(stream.average_rate)


def _md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("ext", [".mp4", ".avi"])
def test_write_clip_decodes_and_is_byte_identical(tmp_path, ext):
    person = sample_person(0, 3)
    paths = []
    for k in range(2):
        frames = C.render_single_clip(person, "Surprise", n_frames=6, size=48, rng=np.random.default_rng(5))
        paths.append(tmp_path / f"clip{k}{ext}")
        assert C.write_clip(paths[-1], frames, fps=12) == 6
    assert _md5(paths[0]) == _md5(paths[1])
    decoded, rate = _decode(paths[0])
    assert len(decoded) == 6 and rate == 12
    assert decoded[0].shape == (48, 48, 3) and decoded[0].dtype == np.uint8
    # lossy but close to what was rendered
    rendered = list(C.render_single_clip(person, "Surprise", n_frames=6, size=48, rng=np.random.default_rng(5)))
    assert np.abs(decoded[3].astype(int) - rendered[3]).mean() < 12


def test_write_clip_streams_frames_one_at_a_time(tmp_path):
    pulled = []

    def frames():
        for k in range(5):
            pulled.append(k)
            yield np.full((16, 16, 3), 40 * k, np.uint8)

    gen = frames()
    assert C.write_clip(tmp_path / "s.mp4", gen, fps=5) == 5
    assert pulled == [0, 1, 2, 3, 4]
    assert len(_decode(tmp_path / "s.mp4")[0]) == 5


def test_write_clip_rejects_bad_frames(tmp_path):
    with pytest.raises(InvalidInputError, match="no frames"):
        C.write_clip(tmp_path / "e.mp4", [], fps=10)
    with pytest.raises(InvalidInputError, match="even"):
        C.write_clip(tmp_path / "o.mp4", [np.zeros((15, 16, 3), np.uint8)], fps=10)
    with pytest.raises(InvalidInputError, match="changed"):
        C.write_clip(tmp_path / "c.mp4", [np.zeros((16, 16, 3), np.uint8), np.zeros((18, 16, 3), np.uint8)])
    with pytest.raises(InvalidInputError, match="uint8"):
        C.write_clip(tmp_path / "f.mp4", [np.zeros((16, 16, 3), np.float32)])
    with pytest.raises(InvalidInputError, match="extension"):
        C.write_clip(tmp_path / "x.gif", [np.zeros((16, 16, 3), np.uint8)])


def test_expression_curve_rises_to_apex_and_falls_back():
    curve = C.expression_curve(31, apex=0.5, peak=0.9, width=0.3)
    assert curve.argmax() == 15 and curve[15] == pytest.approx(0.9)
    assert curve[0] == 0 and curve[-1] == 0
    assert np.all(np.diff(curve[:16]) >= 0) and np.all(np.diff(curve[15:]) <= 0)
    assert len(C.expression_curve(300)) == 300


def test_clip_apex_is_not_always_the_middle_frame():
    """AFEW-like clips put the apex anywhere in APEX_RANGE: early, late, and often far
    enough from the middle that the middle frame shows less than half the peak."""
    rng = np.random.default_rng(0)
    curves = np.array([C.sample_expression_curve(rng, 31, 1.0) for _ in range(400)])
    apex = curves.argmax(axis=1) / 30
    assert apex.min() < 0.2 and apex.max() > 0.8
    assert np.all((apex >= C.APEX_RANGE[0] - 0.02) & (apex <= C.APEX_RANGE[1] + 0.02))
    weak_middle = np.mean(curves[:, 15] < 0.5)
    assert 0.15 < weak_middle < 0.6, weak_middle
    assert np.all(curves.max(axis=1) == 1.0)  # the apex itself is always in the clip


def test_single_clip_lengths_and_a_clip_with_no_face():
    person = sample_person(0, 4)
    short = list(C.render_single_clip(person, "Happiness", n_frames=4, size=32, rng=np.random.default_rng(1)))
    long = C.render_single_clip(person, "Happiness", n_frames=40, size=32, rng=np.random.default_rng(1))
    assert len(short) == 4 and sum(1 for _ in long) == 40
    face = list(C.render_single_clip(person, "Anger", n_frames=3, size=64, rng=np.random.default_rng(2)))
    empty = list(C.render_single_clip(None, "Anger", n_frames=3, size=64, rng=np.random.default_rng(2)))
    diff = np.abs(face[1].astype(int) - empty[1]).sum(axis=2)
    centre, border = diff[16:48, 16:48].mean(), np.r_[diff[:, :4].ravel(), diff[:, -4:].ravel()].mean()
    assert centre > 40 and border < centre / 4  # the face is the only difference


def test_group_clip_frames_and_label():
    people = [sample_person(0, i) for i in range(4)]
    emotions = ["Happiness", "Happiness", "Surprise", "Anger"]
    frames = list(C.render_group_clip(people, emotions, n_frames=3, height=64, rng=np.random.default_rng(0)))
    assert len(frames) == 3 and frames[0].shape == (64, 114, 3)
    assert C.group_clip_label(emotions) == "Positive"
    with pytest.raises(InvalidInputError):
        list(C.render_group_clip(people, emotions[:2], n_frames=2, height=64))


def test_afew_writer_and_reader(tmp_path):
    kw = dict(n_train_per_class=1, n_val_per_class=1, n_frames=3, fps=10, size=32, seed=4, progress=False)
    W.write_afew(tmp_path / "a", workers=1, **kw)
    W.write_afew(tmp_path / "b", workers=2, **kw)
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.avi"))
    assert len(files_a) == 14
    assert all(_md5(tmp_path / "a" / f) == _md5(tmp_path / "b" / f) for f in files_a)
    train = D.read_afew(tmp_path / "a", "train")
    val = D.read_afew(tmp_path / "a", "val")
    assert len(train) == 7 and len(val) == 7 and not train.skipped
    assert sorted(train.targets("emotion")) == list(range(7))
    truth = {r["file"]: r["emotion"] for r in W.load_meta(tmp_path / "a")}
    for i, (path, lab) in enumerate(train.items):
        assert L.EMOTIONS_7[lab["emotion"]] == truth[str(path.relative_to(tmp_path / "a"))]
        frames = list(train.frames(i))
        assert len(frames) == 3 and frames[0].shape == (32, 32, 3)


def test_vgaf_writer_and_reader(tmp_path):
    W.write_vgaf(tmp_path, n_train=3, n_val=2, n_frames=2, fps=10, size=48, seed=1, progress=False)
    train = D.read_vgaf(tmp_path, "train")
    val = D.read_vgaf(tmp_path, "val")
    assert len(train) == 3 and len(val) == 2 and not train.skipped and not val.skipped
    assert Counter(train.targets("group")) == {0: 1, 1: 1, 2: 1}  # balanced labels
    meta = {r["file"]: r for r in W.load_meta(tmp_path)}
    for path, lab in train.items:
        row = meta[f"Train/{path.name}"]
        emotions = row["emotions"].split()
        assert 2 <= len(emotions) <= 6
        assert L.VGAF_CLASSES[lab["group"]] == row["label"] == L.group_label(emotions)
        frames, _ = _decode(path)
        assert len(frames) == 2 and frames[0].shape == (48, 86, 3)
    header = (tmp_path / "Train_labels.txt").read_text().splitlines()[0]
    assert header == "Vid_name Label"

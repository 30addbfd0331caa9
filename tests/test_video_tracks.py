"""Face tracks on a rendered multi-person clip with known identities: ``facelab predict --per-track``,
``FaceAnalyzer.analyze_video`` with ``track``, ``facelab.inference.video.video_tracks``; bad videos through the
new path; the background decoder."""
from __future__ import annotations

import json
import threading

import numpy as np
import pandas as pd
import pytest
from bad_inputs import write_bad_videos
from conftest import tiny_model
from PIL import Image

from facelab.inference.analyze import FaceAnalyzer
from facelab.checkpoints import save_checkpoint
from facelab.apps.cli import main
from facelab.errors import InvalidInputError
from facelab.synth.clips import write_clip, write_crowd_clip
from facelab.inference.tracking import track_metrics
from facelab.inference.video import face_network, iter_frames, video_tracks

pytestmark = pytest.mark.usefixtures("one_thread")
FPS = 25


@pytest.fixture(scope="module")
def crowd(tmp_path_factory):
    """3 people, 320 x 240, 3 s: they cross, and person 0 walks out of view and back."""
    path = tmp_path_factory.mktemp("crowd") / "crowd.mp4"
    truth = write_crowd_clip(path, 3, width=320, height=240, fps=FPS, duration=3.0, seed=0, face_height=(0.17, 0.21))
    return path, truth


@pytest.fixture(scope="module")
def model():
    return tiny_model(image_size=32)


@pytest.fixture(scope="module")
def ckpt(model, tmp_path_factory):
    return save_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "tiny")


@pytest.fixture(scope="module")
def bad_videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    bad = write_bad_videos(folder)
    y, x = np.mgrid[0:96, 0:128].astype(np.float32)
    blank = [np.stack([x * 2, y * 2, np.full_like(x, 30.0 * i)], -1).astype(np.uint8) for i in range(4)]
    write_clip(folder / "no_face.mp4", blank, fps=FPS)
    return {"no_face": folder / "no_face.mp4", "truncated": bad["truncated_mp4"], "text": bad["text_as_mp4"]}


def _scores(df, truth, min_visible=0.5):
    """track_metrics of the per-frame rows of one clip against the rendered truth."""
    ok = df[df["status"] == "ok"]
    pred_ids, pred_boxes = [], []
    for t in range(len(truth)):
        rows = ok[ok["frame"] == t]
        pred_ids.append(rows["track"].astype(int).tolist())
        pred_boxes.append(rows[["x1", "y1", "x2", "y2"]].to_numpy())
    true_ids = [[f.identity for f in faces if f.visible >= min_visible] for faces in truth]
    true_boxes = [[f.box for f in faces if f.visible >= min_visible] for faces in truth]
    return track_metrics(true_ids, true_boxes, pred_ids, pred_boxes)


def test_the_clip_has_crossings_exits_and_returns(crowd):
    _, truth = crowd
    assert len(truth) == 3 * FPS
    in_view = [{f.identity for f in faces if f.visible >= 0.5} for faces in truth]
    seen_0 = [0 in v for v in in_view]
    first_out = seen_0.index(False)
    assert seen_0[0] and True in seen_0[first_out:]  # person 0 leaves and comes back
    assert any(0 < f.visible < 0.5 for faces in truth for f in faces)  # someone is partly hidden or out


def test_crowd_clips_are_deterministic_and_checked():
    from facelab.synth.clips import render_crowd_clip

    first = [render_crowd_clip(2, width=96, height=64, duration=0.12, seed=3) for _ in range(2)]
    for a, b in zip(*first):
        assert np.array_equal(a.image, b.image) and a.faces == b.faces
        assert a.image.shape == (64, 96, 3) and a.image.dtype == np.uint8
    for bad in (dict(n_people=0), dict(width=101), dict(fps=0), dict(duration=0.0), dict(face_height=(0.3, 0.1)),
                dict(noise=1.0)):
        with pytest.raises(InvalidInputError):
            next(render_crowd_clip(**{"width": 96, "height": 64, **bad}))


def test_predict_per_track_matches_the_true_identities(crowd, ckpt, tmp_path, capsys):
    path, truth = crowd
    frames_json, tracks_json = tmp_path / "frames.json", tmp_path / "tracks.json"
    common = [str(path), "--model", str(ckpt), "--precision", "fp32"]
    assert main(["predict", *common, "--json", str(frames_json)]) == 0
    assert main(["predict", *common, "--per-track", "--json", str(tracks_json)]) == 0
    assert "face tracks" in capsys.readouterr().out
    frames = pd.DataFrame(json.loads(frames_json.read_text()))
    m = _scores(frames, truth)
    # every true person is followed by one track, from start to end
    assert m.n_people == 3 and len(m.mapping) == 3 and len(set(m.mapping.values())) == 3
    assert m.id_switches == 0, m
    assert m.recall >= 0.9 and m.coverage >= 0.9, m
    # one row per track: what the per-frame rows say about that track
    tracks = pd.DataFrame(json.loads(tracks_json.read_text()))
    assert (tracks["status"] == "ok").all() and tracks["track"].is_unique
    for _, row in tracks.iterrows():
        rows = frames[frames["track"] == row["track"]]
        assert row["first_frame"] == rows["frame"].min() and row["last_frame"] == rows["frame"].max()
        assert row["frames"] == len(rows)
        probs = [c for c in frames.columns if c.startswith("emotion_")]
        np.testing.assert_allclose(row[probs].to_numpy(float), rows[probs].mean().to_numpy(float), atol=1e-6)
        assert row["emotion"] == probs[int(np.argmax(row[probs].to_numpy(float)))][len("emotion_"):]
        assert row["age"] == pytest.approx(rows["age"].mean(), abs=1e-6)
        assert row["gender"] == rows["gender"].mode().iloc[0] or rows["gender"].value_counts().nunique() == 1
    long = tracks[tracks["frames"] >= 10]
    assert sorted(long["track"]) == sorted(m.mapping.values())


def test_analyze_video_tracks_and_detect_every(crowd, model):
    path, truth = crowd
    fa = FaceAnalyzer(model, precision="fp32")
    every = fa.analyze_video(path, detect_every=3)
    assert list(every.columns) == fa.columns(video=True) and str(every["track"].dtype) == "Int64"
    ok = every[every["status"] == "ok"]
    carried = ok[ok["frame"] % 3 != 0]
    assert len(carried) and carried["det_prob"].isna().all()  # boxes predicted, not detected
    assert ok[ok["frame"] % 3 == 0]["det_prob"].between(0.9, 1.0).all()
    m = _scores(every, truth)
    assert m.id_switches <= 1 and m.coverage >= 0.8, m
    summary = fa.summarize_tracks(every)
    assert list(summary.columns) == fa.track_columns()
    assert summary["frames"].sum() == len(ok)


def test_video_tracks_descriptors_are_the_statistics_of_each_person(crowd, model):
    path, _ = crowd
    network = face_network(model, precision="fp32", freeze=False)
    clip = video_tracks(path, network, detect_every=2, detect_size=160)
    assert clip.feature_dim == model.num_features and len(clip.frame_indices) == 3 * FPS
    assert len(clip.long_tracks(10)) == 3
    for track in clip.tracks:
        F = track.features.astype(np.float64)
        assert np.isfinite(F).all() and len(F) == track.n_frames == len(track.boxes)
        assert track.detected.any()
        expected = np.concatenate([F.mean(0), F.max(0), F.min(0), F.std(0)])
        np.testing.assert_allclose(track.descriptor(l2_normalize=False).vector, expected, rtol=1e-10, atol=1e-12)
    vector, has_face = clip.group_descriptor(min_frames=10)
    assert has_face and vector.shape == (4 * clip.feature_dim,)
    with pytest.raises(InvalidInputError, match="appearance"):
        video_tracks(path, network, appearance="looks")


@pytest.mark.parametrize("per_track", [False, True])
def test_bad_videos_through_the_tracking_path(bad_videos, crowd, ckpt, tmp_path, per_track):
    out = tmp_path / "out.json"
    photo = tmp_path / "photo.png"  # a still image among the videos keeps its rows, without a track
    Image.fromarray(next(iter_frames(crowd[0])).image).save(photo)
    inputs = [bad_videos["no_face"], bad_videos["truncated"], photo, bad_videos["text"]]
    flags = ["--per-track"] if per_track else []
    code = main(["predict", *map(str, inputs), "--model", str(ckpt), "--precision", "fp32", "--detect-every", "2",
                 "--json", str(out), *flags])
    assert code == 2
    df = pd.DataFrame(json.loads(out.read_text()))
    assert list(dict.fromkeys(df["name"])) == [str(p) for p in inputs]  # nothing lost, input order kept
    no_face = df[df["name"] == str(bad_videos["no_face"])]
    assert (no_face["status"] == "no face").all()
    assert len(no_face) == (1 if per_track else 4)  # one row per frame, or one for the video
    for key, word in (("truncated", "truncated"), ("text", "not a video")):
        rows = df[df["name"] == str(bad_videos[key])]
        failed = rows[rows["status"] == "failed"]
        assert len(failed) == 1 and word in failed.iloc[0]["error"]
        assert rows.iloc[-1]["status"] == "failed"  # after the frames (or tracks) before it
    still = df[df["name"] == str(photo)]
    assert len(still) >= 2 and (still["status"] == "ok").all() and still["track"].isna().all()
    assert still["x1"].notna().all() and still["emotion"].notna().all()


def test_predict_rejects_bad_tracking_options(crowd, ckpt, capsys):
    path, _ = crowd
    for flags in (["--detect-every", "0"], ["--detect-size", "5"], ["--appearance", "looks"]):
        with pytest.raises(SystemExit) as info:
            main(["predict", str(path), "--model", str(ckpt), *flags])
        assert info.value.code == 1
    capsys.readouterr()


def test_background_decoding_stops_when_the_reader_stops(crowd):
    path, _ = crowd
    ahead = list(iter_frames(path, every=7))
    inline = list(iter_frames(path, every=7, prefetch=0))
    assert [f.index for f in ahead] == [f.index for f in inline] == list(range(0, 75, 7))
    assert all(np.array_equal(a.image, b.image) for a, b in zip(ahead, inline))
    frames = iter_frames(path, prefetch=2)
    next(frames)
    frames.close()  # stop early: the decoding thread ends and closes the file
    assert not any(t.name == "facelab-decode" for t in threading.enumerate())
    with pytest.raises(InvalidInputError, match="prefetch"):
        next(iter_frames(path, prefetch=-1))

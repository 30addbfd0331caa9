"""Face tracks (facelab.inference.tracking) and detection at a working resolution (facelab.faces).

* the box / landmark mapping between the working resolution and the full frame, property-based;
* the tracker on drawn trajectories: two faces crossing, a face leaving and coming back, a few
  detector misses, ``detect_every`` carrying;
* track_metrics on hand-made tracks; per-track and group descriptors against numpy.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facelab.errors import InvalidInputError
from facelab.faces import detect_faces, map_coordinates, smallest_face, working_size
from facelab.inference.pooling import frame_statistics, track_group_statistics, tracks_by_frame
from facelab.inference.tracking import (
    FaceTracker,
    appearance_vectors,
    box_iou,
    match_boxes,
    color_histogram,
    track_metrics,
)
from facelab.inference.video import ClipTracks, FaceTrack

PROPS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
sizes = st.tuples(st.integers(1, 5000), st.integers(1, 5000))
detect_sizes = st.one_of(st.none(), st.integers(12, 4000))


# --- the working resolution -------------------------------------------------------------------
@PROPS
@given(sizes, detect_sizes)
def test_working_size_shrinks_to_the_longer_side_and_never_enlarges(size, detect_size):
    W, H = size
    w, h = working_size(size, detect_size)
    assert 1 <= w <= W and 1 <= h <= H
    if detect_size is None or max(W, H) <= detect_size:
        assert (w, h) == (W, H)
    else:
        assert max(w, h) == detect_size
        s = detect_size / max(W, H)
        # the aspect ratio is kept up to rounding (a side never drops below 1 pixel)
        assert abs(w - max(W * s, 1)) <= 0.5 and abs(h - max(H * s, 1)) <= 0.5


@st.composite
def frame_and_boxes(draw):
    W, H = draw(sizes)
    detect_size = draw(st.integers(12, 4000))
    work = working_size((W, H), detect_size)
    n = draw(st.integers(0, 6))
    coords = draw(st.lists(st.floats(0, 1), min_size=4 * n, max_size=4 * n))
    boxes = np.array(coords, dtype=np.float64).reshape(n, 4)
    boxes = np.concatenate([np.minimum(boxes[:, :2], boxes[:, 2:]), np.maximum(boxes[:, :2], boxes[:, 2:])], 1)
    boxes *= np.tile(work, 2)  # boxes anywhere inside the working image
    return (W, H), work, boxes


@PROPS
@given(frame_and_boxes())
def test_boxes_map_back_to_the_frame_consistently(data):
    frame, work, boxes = data
    full = map_coordinates(boxes, work, frame)
    # back then forth is the identity
    np.testing.assert_allclose(map_coordinates(full, frame, work), boxes, rtol=1e-9, atol=1e-9)
    # a box inside the working image is inside the frame
    W, H = frame
    assert (full[:, [0, 2]] >= -1e-9).all() and (full[:, [0, 2]] <= W + 1e-6).all()
    assert (full[:, [1, 3]] >= -1e-9).all() and (full[:, [1, 3]] <= H + 1e-6).all()
    # widths scale by W / w, heights by H / h, and the order x1 <= x2 is kept
    np.testing.assert_allclose(full[:, 2] - full[:, 0], (boxes[:, 2] - boxes[:, 0]) * W / work[0], rtol=1e-9,
                               atol=1e-9)
    np.testing.assert_allclose(full[:, 3] - full[:, 1], (boxes[:, 3] - boxes[:, 1]) * H / work[1], rtol=1e-9,
                               atol=1e-9)
    # landmarks (x, y points) use the same mapping as the box corners
    points = boxes.reshape(-1, 2, 2)
    np.testing.assert_allclose(map_coordinates(points, work, frame).reshape(-1, 4), full)


@PROPS
@given(sizes, st.integers(12, 4000), st.integers(12, 200))
def test_smallest_face_found(size, detect_size, min_face):
    w, _ = working_size(size, detect_size)
    expected = max(min_face, 12 * size[0] / w)
    assert smallest_face(size, detect_size, min_face) == pytest.approx(expected)
    assert smallest_face(size, None, min_face) == min_face


def test_mapping_and_size_reject_bad_input():
    with pytest.raises(InvalidInputError, match="detect_size"):
        working_size((100, 100), 5)
    with pytest.raises(InvalidInputError, match="detect_size"):
        working_size((100, 100), 64.5)
    with pytest.raises(InvalidInputError, match="pairs"):
        map_coordinates(np.zeros(3), (10, 10), (20, 20))
    with pytest.raises(InvalidInputError, match="positive"):
        map_coordinates(np.zeros(4), (0, 10), (20, 20))
    with pytest.raises(InvalidInputError, match="detect_size"):
        detect_faces(np.zeros((40, 40, 3), np.uint8), detect_size=0)


def test_detection_at_a_working_resolution_finds_the_same_face():
    """Real MTCNN: a drawn face in a 960 x 540 frame, detected at full size and at 320 px."""
    from facelab.synth import render_background, sample_person
    from facelab.synth.render import paint_face

    torch.set_num_threads(1)
    canvas = render_background(np.random.default_rng(3), 960, 540)
    true_box = paint_face(canvas, sample_person(0, 7), age=35, center=(600, 260), face_height=120)
    frame = np.asarray(canvas)
    full = detect_faces(frame)[0]
    small = detect_faces(frame, detect_size=320)[0]
    assert len(full) >= 1 and len(small) >= 1
    assert box_iou([full[0].box], [small[0].box])[0, 0] > 0.75
    assert box_iou([true_box], [small[0].box])[0, 0] > 0.6
    landmarks = np.array(small[0].landmarks)
    assert np.abs(landmarks - np.array(full[0].landmarks)).max() < 0.1 * 120  # within 10% of the face
    # a frame no larger than detect_size is detected exactly as without it
    assert detect_faces(frame, detect_size=960)[0] == full


# --- the tracker on drawn trajectories -------------------------------------------------------------
def _box(cx, cy, size=40.0):
    return [cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2]


def _looks(n=4, dim=32, seed=0):
    """n clearly different appearance vectors."""
    return np.random.default_rng(seed).normal(size=(n, dim))


def _jitter(v, rng, scale=0.05):
    return v + scale * rng.normal(size=v.shape)


@pytest.mark.parametrize("with_features", [True, False])
def test_two_faces_crossing_keep_their_ids(with_features):
    """A walks right, B walks left at the same height; they overlap completely mid-way."""
    rng = np.random.default_rng(1)
    looks = _looks()
    tracker = FaceTracker()
    seen = []
    for t in range(40):
        a, b = _box(50 + 5 * t, 100), _box(245 - 5 * t, 100)
        boxes = np.array([a, b]) if t % 2 else np.array([b, a])  # the detector's order varies
        who = [0, 1] if t % 2 else [1, 0]
        feats = np.stack([_jitter(looks[k], rng) for k in who]) if with_features else None
        ids = tracker.update(boxes, features=feats)
        seen.append({who[j]: int(ids[j]) for j in range(2)})
    assert all(s == seen[0] for s in seen) and seen[0][0] != seen[0][1]
    assert tracker.n_tracks_ == 2


def test_a_face_that_leaves_and_comes_back_gets_its_id_back():
    rng = np.random.default_rng(2)
    looks = _looks()
    tracker = FaceTracker()
    first = tracker.update([_box(100, 100), _box(300, 100)], features=[looks[0], looks[1]], frame=0)
    for t in range(1, 20):  # person 0 walks right and out of view; person 1 stays
        boxes, feats = [_box(300, 100)], [_jitter(looks[1], rng)]
        if t < 10:
            boxes.insert(0, _box(100 + 30 * t, 100))
            feats.insert(0, _jitter(looks[0], rng))
        ids = tracker.update(boxes, features=feats, frame=t)
    assert ids.tolist() == [first[1]]
    # 60 frames later (far more than max_missed) person 0 comes back on the left, and a stranger appears
    back = tracker.update([_box(300, 100), _box(40, 300), _box(500, 300)],
                          features=[_jitter(looks[1], rng), _jitter(looks[0], rng), looks[2]], frame=70)
    assert back[0] == first[1] and back[1] == first[0]
    assert back[2] not in first  # a new person, a new id
    # after the re-identification window the id is gone for good
    short = FaceTracker(reid_window=20)
    short.update([_box(100, 100)], features=[looks[0]], frame=0)
    for t in range(1, 50):  # the detector runs on every frame and finds nobody
        short.update([], frame=t)
    assert short.update([_box(100, 100)], features=[looks[0]], frame=50).tolist() == [1]


def test_no_reidentification_when_everybody_looks_alike():
    """reid_ratio: the face is as close to another track as to the lost one -> a new id."""
    tracker = FaceTracker(max_missed=0)
    same = np.ones(8)
    tracker.update([_box(100, 100), _box(300, 100)], features=[same, same + 0.01], frame=0)
    tracker.update([_box(300, 100)], features=[same + 0.01], frame=1)  # person 0 is missed twice: lost
    tracker.update([_box(300, 100)], features=[same + 0.01], frame=2)
    ids = tracker.update([_box(300, 100), _box(600, 400)], features=[same + 0.01, same], frame=3)
    assert ids.tolist() == [1, 2]


def test_a_track_survives_a_few_detector_misses():
    rng = np.random.default_rng(3)
    looks = _looks()
    tracker = FaceTracker(max_missed=4)
    ids = []
    for t in range(30):
        missed = 10 <= t < 14  # the detector misses the face 4 times while it moves
        boxes = [] if missed else [_box(100 + 4 * t, 200)]
        feats = np.zeros((0, 32)) if missed else [_jitter(looks[0], rng)]
        ids.append(tracker.update(boxes, features=feats).tolist())
    assert {i for frame in ids for i in frame} == {0}
    # by position alone (no features): the constant-velocity prediction finds it again
    blind = FaceTracker(max_missed=4)
    for t in range(30):
        out = blind.update([] if 10 <= t < 14 else [_box(100 + 4 * t, 200)])
    assert out.tolist() == [0] and blind.n_tracks_ == 1


def test_detect_every_carries_the_tracks_along_their_motion():
    tracker = FaceTracker()
    K = 3
    for t in range(0, 12):
        true = np.array([_box(100 + 6 * t, 100 + 2 * t), _box(500 - 6 * t, 300)])
        if t % K == 0:
            ids = tracker.update(true, frame=t)
        else:
            ids, boxes = tracker.carry(frame=t, frame_size=(640, 480))
            if t > K:  # the velocity is known after two detections: the carried boxes follow the motion
                np.testing.assert_allclose(boxes, true, atol=1e-6)
        assert ids.tolist() == [0, 1]
    # a carried box that leaves the frame is dropped
    ids, boxes = tracker.carry(frame=200, frame_size=(640, 480))
    assert len(ids) == 0 and boxes.shape == (0, 4)


def test_landmarks_as_appearance_and_input_checks():
    tracker = FaceTracker()
    marks = np.array([[[0.3, 0.4], [0.7, 0.4], [0.5, 0.6], [0.35, 0.8], [0.65, 0.8]]]) * 40
    ids = tracker.update([_box(20, 20)], landmarks=marks)
    assert tracker.update([_box(22, 20)], landmarks=marks + [2, 0]).tolist() == ids.tolist()
    with pytest.raises(InvalidInputError, match="increase"):
        tracker.update([_box(20, 20)], frame=0)
    with pytest.raises(InvalidInputError, match=r"\(n, 4\)"):
        tracker.update([[1, 2, 3]])
    with pytest.raises(InvalidInputError, match="x1 < x2"):
        tracker.update([[5, 5, 1, 1]])
    with pytest.raises(InvalidInputError, match="one row per box"):
        tracker.update([_box(20, 20)], features=np.zeros((2, 4)))
    with pytest.raises(InvalidInputError, match="NaN"):
        tracker.update([_box(20, 20)], features=[[np.nan, 1.0]])
    for bad in (dict(max_missed=-1), dict(max_shift=-1.0), dict(reid_window=1.5), dict(momentum=True)):
        with pytest.raises(InvalidInputError):
            FaceTracker(**bad)
    assert "max_missed=20" in repr(FaceTracker())
    assert tracker.reset().n_tracks_ == 0 and tracker.frame_ == -1


def test_appearance_vectors():
    crops = np.zeros((2, 3, 4, 4), np.float32)
    crops[0, 0] = 255  # red
    crops[1, 2] = 255  # blue
    h = color_histogram(crops, bins=2)
    assert h.shape == (2, 8) and np.allclose(np.linalg.norm(h, axis=1), 1)
    assert float(h[0] @ h[1]) == 0.0 and float(h[0] @ h[0]) == pytest.approx(1.0)
    feats = np.array([[3.0, 4.0], [0.0, 2.0]])
    both = appearance_vectors("features+color", feats, crops)
    cos = both @ both.T  # the mean of the two cosines
    assert cos[0, 1] == pytest.approx((0.8 + 0.0) / 2)
    np.testing.assert_allclose(appearance_vectors("features", feats), [[0.6, 0.8], [0.0, 1.0]], atol=1e-6)
    with pytest.raises(InvalidInputError, match="appearance"):
        appearance_vectors("colour", feats, crops)


# --- scoring ------------------------------------------------------------------------------------
def test_track_metrics_on_hand_made_tracks():
    a, b = _box(50, 50), _box(200, 50)
    true_ids = [[0, 1]] * 6
    true_boxes = [[a, b]] * 6
    perfect = track_metrics(true_ids, true_boxes, [[7, 8]] * 6, [[a, b]] * 6)
    assert perfect.coverage == 1.0 and perfect.recall == 1.0 and perfect.id_switches == 0
    assert perfect.mapping == {0: 7, 1: 8} and perfect.n_people == 2 and perfect.n_tracks == 2
    # person 0 gets a new id after frame 3, and frame 4 misses person 1
    pred_ids = [[7, 8]] * 3 + [[9, 8], [9], [9, 8]]
    pred_boxes = [[a, b]] * 4 + [[a]] + [[a, b]]
    m = track_metrics(true_ids, true_boxes, pred_ids, pred_boxes)
    assert m.id_switches == 1 and m.switches_per_person == {0: 1, 1: 0}
    assert m.recall == pytest.approx(11 / 12)
    assert m.coverage == pytest.approx((3 + 5) / 12)  # person 0 -> 7 or 9 (3 frames each), person 1 -> 8
    assert m.switches_per_minute(fps=0.1) == pytest.approx(1 / 2 / 1.0)  # 6 frames at 0.1 fps = 1 minute
    with pytest.raises(InvalidInputError, match="one entry per frame"):
        track_metrics(true_ids, true_boxes, pred_ids[:2], pred_boxes)


# --- per-track descriptors ---------------------------------------------------------------------
def _clip_tracks():
    rng = np.random.default_rng(5)
    tracks = []
    for k, frames in enumerate(([0, 1, 2, 3], [2, 3, 4], [4])):
        n = len(frames)
        tracks.append(FaceTrack(k, np.array(frames), np.array(frames) / 25, np.tile(_box(50, 50), (n, 1)),
                                np.ones(n, bool), rng.normal(size=(n, 6)).astype(np.float32)))
    return ClipTracks("x.mp4", np.arange(5), np.arange(5) / 25, tracks, 6)


def test_per_track_descriptor_is_the_numpy_statistics():
    clip = _clip_tracks()
    for track in clip.tracks:
        F = track.features.astype(np.float64)
        expected = np.concatenate([F.mean(0), F.max(0), F.min(0), F.std(0)])
        vector, has_face = track.descriptor(l2_normalize=False)
        assert has_face
        np.testing.assert_allclose(vector, expected, rtol=1e-12)
        np.testing.assert_allclose(clip.descriptors()[track.track].vector, expected / np.linalg.norm(expected))
    assert list(clip.descriptors(min_frames=2)) == [0, 1]


def test_group_descriptor_pools_people_then_frames():
    clip = _clip_tracks()
    per_frame = []
    for t in range(5):  # people in view at frame t, in track order
        per_frame.append(np.stack([tr.features[list(tr.frame_indices).index(t)].astype(np.float64)
                                   for tr in clip.tracks if t in tr.frame_indices]))
    for got, want in zip(tracks_by_frame([(tr.frame_indices, tr.features) for tr in clip.tracks]), per_frame):
        np.testing.assert_allclose(got, want)
    P = np.stack([np.concatenate([f.mean(0), f.std(0)]) for f in per_frame])
    expected = np.concatenate([P.mean(0), P.std(0)])
    vector, has_face = clip.group_descriptor(l2_normalize=False)
    assert has_face
    np.testing.assert_allclose(vector, expected, rtol=1e-12)
    empty = track_group_statistics([], dim=6)
    assert not empty.has_face and not empty.vector.any()
    assert frame_statistics(clip.tracks[2].features).vector[18:].sum() == 0  # one frame: std 0
    with pytest.raises(InvalidInputError, match="twice"):
        tracks_by_frame([(np.array([1, 1]), np.zeros((2, 6)))])


def test_match_boxes_pairs_one_to_one_above_the_iou_threshold():
    truth = [[0, 0, 10, 10], [20, 0, 30, 10], [50, 50, 60, 60]]
    found = [[21, 0, 31, 10], [0, 1, 10, 11], [0, 0, 10, 10], [100, 100, 110, 110]]
    # the exact copy wins truth 0 over the shifted one; truth 2 and found 3 have no partner
    assert match_boxes(truth, found) == [(0, 2), (1, 0)]
    assert match_boxes(truth, found, min_iou=0.95) == [(0, 2)]
    assert match_boxes(truth, []) == [] and match_boxes([], found) == []
    with pytest.raises(InvalidInputError):
        match_boxes(truth, found, min_iou=1.5)

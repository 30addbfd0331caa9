"""Clip descriptors (facelab.inference.pooling): hand-computed values, the no-face policy,
input validation, the scikit-learn transformer, and hypothesis fuzzing."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.svm import LinearSVC

from facelab.errors import FacelabError, InvalidInputError
from facelab.inference.pooling import (
    Descriptor,
    VideoDescriptor,
    frame_statistics,
    group_statistics,
    l2_normalize_vector,
)

SQ2, SQ3 = np.sqrt(2.0), np.sqrt(3.0)

# --- frame_statistics: hand-computed -------------------------------------------------

# 3 frames, D = 2.  column 0: 1, 3, 5   column 1: 2, 6, 4
F3 = np.array([[1.0, 2.0], [3.0, 6.0], [5.0, 4.0]])
# mean 3, 4 | max 5, 6 | min 1, 2 | population std: deviations (-2, 0, 2) and (-2, 2, 0)
# -> variance 8/3 in both columns -> std sqrt(8/3) = 1.6329931618554521
F3_DESCRIPTOR = [3.0, 4.0, 5.0, 6.0, 1.0, 2.0, 1.6329931618554521, 1.6329931618554521]


def test_frame_statistics_hand_computed():
    vector, has_face = frame_statistics(F3)
    assert has_face is True
    np.testing.assert_allclose(vector, F3_DESCRIPTOR, rtol=1e-12)
    assert vector.dtype == np.float64


def test_frame_statistics_l2_normalised_hand_computed():
    # ||d||^2 = 9 + 16 + 25 + 36 + 1 + 4 + 8/3 + 8/3 = 289/3  ->  ||d|| = 17 / sqrt(3)
    vector, _ = frame_statistics(F3, l2_normalize=True)
    np.testing.assert_allclose(vector, np.array(F3_DESCRIPTOR) * SQ3 / 17, rtol=1e-12)
    assert vector[0] == pytest.approx(0.3056560, abs=1e-7)  # 3 * sqrt(3) / 17
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-12)


def test_frame_statistics_one_frame_has_zero_std():
    vector, has_face = frame_statistics(np.array([[2.0, -1.0]]))
    assert has_face
    np.testing.assert_array_equal(vector, [2, -1, 2, -1, 2, -1, 0, 0])


def test_frame_statistics_no_face_gives_zero_descriptor_and_flag():
    d = frame_statistics(np.zeros((0, 2)), l2_normalize=True)
    assert isinstance(d, Descriptor)
    assert d.has_face is False
    np.testing.assert_array_equal(d.vector, np.zeros(8))


def test_frame_statistics_subset_and_order_of_stats():
    vector, _ = frame_statistics(F3, stats=("std", "mean"))
    np.testing.assert_allclose(vector, [1.6329931618554521] * 2 + [3.0, 4.0], rtol=1e-12)
    vector, _ = frame_statistics(F3, stats="mean")
    np.testing.assert_array_equal(vector, [3.0, 4.0])


def test_middle_frame_baseline():
    # rows 0, 1, 2 -> the middle one is row 1; with 4 rows it is row 2 (n // 2)
    np.testing.assert_array_equal(frame_statistics(F3, stats="middle").vector, [3.0, 6.0])
    F4 = np.vstack([F3, [[7.0, 7.0]]])
    np.testing.assert_array_equal(frame_statistics(F4, stats="middle").vector, [5.0, 4.0])


def test_frame_statistics_integer_and_float32_input():
    a = frame_statistics(F3.astype(np.int64)).vector
    b = frame_statistics(F3.astype(np.float32)).vector
    np.testing.assert_allclose(a, F3_DESCRIPTOR, rtol=1e-12)
    np.testing.assert_allclose(b, F3_DESCRIPTOR, rtol=1e-7)


# --- group_statistics: hand-computed -------------------------------------------------

GROUP_FRAMES = [
    np.array([[1.0, 2.0], [3.0, 4.0]]),  # two faces: m = (2, 3), s = (1, 1)
    np.array([[5.0, 0.0]]),  # one face:  m = (5, 0), s = (0, 0)
    np.zeros((0, 2)),  # no face: skipped
    np.array([[0.0, 0.0], [4.0, 2.0]]),  # two faces: m = (2, 1), s = (2, 1)
]
# over the 3 frames with faces:
#   mean_t m = (3, 4/3)            mean_t s = (1, 2/3)
#   std_t  m: (2,5,2) -> var 6/3 = 2 -> sqrt 2;  (3,0,1) -> var (25+16+1)/27 = 14/9 -> sqrt(14)/3
#   std_t  s: (1,0,2) -> var 2/3 -> sqrt(2/3);   (1,0,1) -> var (1+4+1)/27 = 2/9 -> sqrt(2)/3
GROUP_DESCRIPTOR = [3.0, 4 / 3, 1.0, 2 / 3, SQ2, np.sqrt(14) / 3, np.sqrt(2 / 3), SQ2 / 3]


def test_group_statistics_hand_computed_with_one_face_and_no_face_frames():
    vector, has_face = group_statistics(GROUP_FRAMES)
    assert has_face is True
    np.testing.assert_allclose(vector, GROUP_DESCRIPTOR, rtol=1e-12)


def test_group_statistics_empty_frames_do_not_change_the_result():
    without_empty = [f for f in GROUP_FRAMES if len(f)]
    np.testing.assert_array_equal(group_statistics(without_empty).vector, group_statistics(GROUP_FRAMES).vector)


def test_group_statistics_single_frame_single_face():
    vector, has_face = group_statistics([np.array([[1.0, 2.0]])])
    assert has_face
    np.testing.assert_array_equal(vector, [1, 2, 0, 0, 0, 0, 0, 0])


def test_group_statistics_l2_normalised():
    vector, _ = group_statistics(GROUP_FRAMES, l2_normalize=True)
    raw = np.array(GROUP_DESCRIPTOR)
    # ||raw||^2 = 9 + 16/9 + 1 + 4/9 + 2 + 14/9 + 2/3 + 2/9 = 12 + 42/9 = 50/3
    np.testing.assert_allclose(vector, raw / np.sqrt(50 / 3), rtol=1e-12)


def test_group_statistics_no_face_anywhere():
    d = group_statistics([np.zeros((0, 3)), np.zeros((0, 3))], l2_normalize=True)
    assert d.has_face is False
    np.testing.assert_array_equal(d.vector, np.zeros(12))
    d = group_statistics([], dim=3)
    assert d.has_face is False and d.vector.shape == (12,)


# --- validation -------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad, words",
    [
        (np.ones(4), "ndim=1"),
        (np.ones((2, 2, 2)), "ndim=3"),
        (np.array([[1.0, np.nan]]), "NaN"),
        (np.array([[1.0, np.inf]]), "infinite"),
        (np.array([["a", "b"]]), "dtype"),
        (np.array([[True, False]]), "dtype"),
        (np.zeros((3, 0)), "D is 0"),
        ([[1.0, 2.0], [3.0]], "cannot be read"),
    ],
)
def test_frame_statistics_rejects_bad_input(bad, words):
    with pytest.raises(InvalidInputError, match=words):
        frame_statistics(bad)


def test_group_statistics_rejects_inconsistent_dimension():
    with pytest.raises(InvalidInputError, match=r"group frame 1.*D=3.*D=2"):
        group_statistics([np.ones((2, 2)), np.ones((1, 3))])


def test_group_statistics_rejects_bad_input():
    with pytest.raises(InvalidInputError, match="list of"):
        group_statistics(np.ones((3, 2)))
    with pytest.raises(InvalidInputError, match="list of"):
        group_statistics(5)
    with pytest.raises(InvalidInputError, match="empty list"):
        group_statistics([])
    with pytest.raises(InvalidInputError, match="NaN"):
        group_statistics([np.ones((1, 2)), np.array([[np.nan, 0.0]])])


def test_bad_stats_name():
    with pytest.raises(InvalidInputError, match="stats"):
        frame_statistics(F3, stats=("mean", "median"))
    with pytest.raises(InvalidInputError, match="stats"):
        VideoDescriptor(stats=("avg",)).fit([F3])


def test_overflow_is_an_error_not_inf():
    huge = np.array([[1e308, -1e308], [-1e308, 1e308]])
    with pytest.raises(InvalidInputError, match="overflow"):
        frame_statistics(huge)


def test_l2_normalize_vector_extreme_scales():
    np.testing.assert_allclose(l2_normalize_vector(np.array([3e300, 4e300])), [0.6, 0.8])
    np.testing.assert_allclose(l2_normalize_vector(np.array([3e-310, 4e-310])), [0.6, 0.8], rtol=1e-6)
    np.testing.assert_array_equal(l2_normalize_vector(np.zeros(3)), np.zeros(3))


# --- the scikit-learn transformer ------------------------------------------------------


def _toy_clips(n_per_class=12, D=6, seed=0):
    """Two classes whose frames differ in *spread*, not in mean: only std/max/min separate them."""
    rng = np.random.default_rng(seed)
    clips, y = [], []
    for label, spread in ((0, 0.2), (1, 2.0)):
        for _ in range(n_per_class):
            n = rng.integers(3, 9)
            clips.append(rng.normal(0.0, spread, size=(n, D)) + 1.0)
            y.append(label)
    return clips, np.array(y)


def test_video_descriptor_transform_matches_functions():
    clips = [F3, np.zeros((0, 2)), np.array([[2.0, -1.0]])]
    vd = VideoDescriptor(l2_normalize=False).fit(clips)
    X = vd.transform(clips)
    assert X.shape == (3, 8)
    np.testing.assert_allclose(X[0], F3_DESCRIPTOR, rtol=1e-12)
    np.testing.assert_array_equal(X[1], np.zeros(8))
    np.testing.assert_array_equal(vd.no_face_, [False, True, False])
    names = vd.get_feature_names_out()
    assert list(names) == ["mean_0", "mean_1", "max_0", "max_1", "min_0", "min_1", "std_0", "std_1"]


def test_video_descriptor_indicator_column_and_l2():
    clips = [F3, np.zeros((0, 2))]
    vd = VideoDescriptor(add_indicator=True)
    X = vd.fit_transform(clips)
    assert X.shape == (2, 9)
    np.testing.assert_allclose(X[0, :8], np.array(F3_DESCRIPTOR) * SQ3 / 17, rtol=1e-12)
    np.testing.assert_array_equal(X[:, 8], [0.0, 1.0])
    assert vd.get_feature_names_out()[-1] == "no_face"


def test_video_descriptor_group_mode():
    clips = [GROUP_FRAMES, [np.zeros((0, 2))]]
    vd = VideoDescriptor(stats="group", l2_normalize=False)
    X = vd.fit_transform(clips)
    np.testing.assert_allclose(X[0], GROUP_DESCRIPTOR, rtol=1e-12)
    np.testing.assert_array_equal(X[1], np.zeros(8))
    np.testing.assert_array_equal(vd.no_face_, [False, True])
    assert list(vd.get_feature_names_out()[:3]) == ["mean_of_face_mean_0", "mean_of_face_mean_1", "mean_of_face_std_0"]


def test_video_descriptor_rejects_dimension_change_between_fit_and_transform():
    vd = VideoDescriptor().fit([np.ones((2, 3))])
    with pytest.raises(InvalidInputError, match=r"clip 0.*D=3"):
        vd.transform([np.ones((2, 4))])
    with pytest.raises(InvalidInputError, match="clip 1"):
        VideoDescriptor().fit([np.ones((2, 3)), np.ones((2, 4))])
    with pytest.raises(InvalidInputError, match="single 2-D array"):
        vd.transform(np.ones((2, 3)))
    with pytest.raises(InvalidInputError, match="empty"):
        vd.transform([])


def test_paper_pipelines_linear_svc_and_random_forest():
    clips, y = _toy_clips()
    test_clips, y_test = _toy_clips(seed=1)
    svc = make_pipeline(VideoDescriptor(), LinearSVC()).fit(clips, y)
    assert svc.score(test_clips, y_test) >= 0.9
    rf = make_pipeline(VideoDescriptor(), RandomForestClassifier(n_estimators=1000, random_state=0))
    rf.fit(clips, y)
    assert rf.score(test_clips, y_test) >= 0.9
    # mean pooling alone cannot see the spread difference -> worse than the 4 statistics
    mean_only = make_pipeline(VideoDescriptor(stats=("mean",)), LinearSVC()).fit(clips, y)
    assert mean_only.score(test_clips, y_test) < svc.score(test_clips, y_test)
    # clone keeps the parameters (sklearn estimator contract)
    assert clone(VideoDescriptor(stats="group", add_indicator=True)).get_params()["stats"] == "group"


def test_compare_video_descriptors_on_spread_only_classes():
    from facelab.inference.pooling import compare_video_descriptors, make_video_classifier

    clips, y = _toy_clips()
    test_clips, y_test = _toy_clips(seed=1)
    result = compare_video_descriptors(clips, y, test_clips, y_test)
    assert set(result) == {"middle frame", "mean pooling", "mean+max+min+std (paper)", "chance (majority class)"}
    assert result["chance (majority class)"] == 0.5  # balanced test set
    assert result["mean+max+min+std (paper)"] >= 0.9
    assert result["mean+max+min+std (paper)"] > max(result["middle frame"], result["mean pooling"])
    group = compare_video_descriptors([[c] for c in clips], y, [[c] for c in test_clips], y_test, group=True)
    assert group["group mean+std (paper)"] >= 0.9  # the per-frame std over faces sees the spread
    with pytest.raises(InvalidInputError, match="classifier"):
        make_video_classifier(classifier="knn")
    with pytest.raises(InvalidInputError, match="two classes"):
        compare_video_descriptors(clips, np.zeros(len(clips)), test_clips, y_test)


def test_pipeline_accepts_objects_with_pooling_input():
    class Clip:
        def __init__(self, F):
            self.F = F

        def pooling_input(self):
            return self.F

    X = VideoDescriptor(l2_normalize=False).fit_transform([Clip(F3)])
    np.testing.assert_allclose(X[0], F3_DESCRIPTOR, rtol=1e-12)
    group_clip = Clip(GROUP_FRAMES)
    group_clip.group = True
    with pytest.raises(InvalidInputError, match="stats='group'"):
        VideoDescriptor().fit([group_clip])
    X = VideoDescriptor(stats="group", l2_normalize=False).fit_transform([group_clip])
    np.testing.assert_allclose(X[0], GROUP_DESCRIPTOR, rtol=1e-12)


# --- hypothesis fuzzing: only FacelabError escapes, outputs are finite ------------------

_floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
_any_array = hnp.arrays(
    dtype=st.sampled_from([np.float64, np.float32, np.int32, np.int64, np.uint8, np.bool_]),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5),
    elements=None,
)
_float_matrix = hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, min_side=0, max_side=5), elements=_floats)


def _check_descriptor(call, expected_blocks):
    try:
        d = call()
    except FacelabError:
        return
    assert isinstance(d, Descriptor)
    assert np.isfinite(d.vector).all()
    assert d.vector.ndim == 1 and d.vector.size % expected_blocks == 0
    if not d.has_face:
        assert not d.vector.any()


@settings(max_examples=150, deadline=None)
@given(F=st.one_of(_any_array, _float_matrix), l2=st.booleans())
def test_fuzz_frame_statistics(F, l2):
    _check_descriptor(lambda: frame_statistics(F, l2_normalize=l2), 4)


@settings(max_examples=150, deadline=None)
@given(frames=st.lists(st.one_of(_float_matrix, _any_array), max_size=4), l2=st.booleans())
def test_fuzz_group_statistics(frames, l2):
    _check_descriptor(lambda: group_statistics(frames, l2_normalize=l2), 4)


@settings(max_examples=60, deadline=None)
@given(clips=st.lists(_float_matrix, min_size=1, max_size=4), indicator=st.booleans())
def test_fuzz_video_descriptor(clips, indicator):
    try:
        X = VideoDescriptor(add_indicator=indicator).fit_transform(clips)
    except FacelabError:
        return
    assert X.shape[0] == len(clips)
    assert np.isfinite(X).all()

"""Video clips -> per-frame face features (facelab.inference.video): streaming decode, frame
sampling, bad files, end to end with real MTCNN and a tiny random network, the cache."""
from __future__ import annotations

import math

import numpy as np
import pytest
from bad_inputs import sample_photo, write_bad_videos
from PIL import Image

from facelab.errors import InvalidInputError, VideoDecodeError
from facelab.inference.pooling import VideoDescriptor
from facelab.inference.video import (
    ClipFailure,
    ClipFeatures,
    extract_clip_features,
    iter_frames,
    load_clip_features,
    save_clip_features,
    video_features,
)

av = pytest.importorskip("av")


def write_video(path, frames, fps=10, codec="mpeg4", faststart=False):
    """Encode RGB uint8 frames (H x W x 3, even sizes) into a video file with PyAV."""
    options = {"movflags": "faststart"} if faststart else {}
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def noise_frames(n, size=(48, 64), seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(n)]


def face_frames(n, size=128):
    """A real photo (scikit-image's astronaut), panned a few pixels per frame: one real face."""
    photo = sample_photo(size + 2 * n)
    return [np.ascontiguousarray(photo[i:i + size, i:i + size]) for i in range(n)]


def no_face_frames(n, size=128):
    """Smooth coloured gradients: no face anywhere."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    return [np.stack([x * 255, y * 255, np.full_like(x, 40.0 * (i % 5))], -1).astype(np.uint8) for i in range(n)]


# --- decoding ------------------------------------------------------------------------


def test_iter_frames_streams_rgb_frames_with_index_and_time(tmp_path):
    frames = noise_frames(12)
    frames[0][:] = (255, 0, 0)  # first frame pure red: checks RGB (not BGR) order
    path = write_video(tmp_path / "clip.mp4", frames, fps=10)
    got = list(iter_frames(path))
    assert [f.index for f in got] == list(range(12))
    np.testing.assert_allclose([f.time for f in got], np.arange(12) / 10, atol=1e-6)
    first = got[0].image
    assert first.shape == (48, 64, 3) and first.dtype == np.uint8
    assert first[..., 0].mean() > 200 and first[..., 2].mean() < 40


def test_iter_frames_every_and_fps_sampling(tmp_path):
    path = write_video(tmp_path / "clip.avi", noise_frames(30), fps=10)
    assert [f.index for f in iter_frames(path, every=4)] == [0, 4, 8, 12, 16, 20, 24, 28]
    # 3 fps out of 10 fps: the first frame of each 1/3 s slot -> times 0, 0.4, 0.7, 1.0, ...
    sampled = list(iter_frames(path, fps=3))
    assert [f.index for f in sampled] == [0, 4, 7, 10, 14, 17, 20, 24, 27]
    # asking for more than the source rate keeps every frame
    assert len(list(iter_frames(path, fps=100))) == 30


@pytest.mark.parametrize("kw", [dict(every=0), dict(every=1.5), dict(fps=0), dict(fps=-2.0),
                                dict(fps=math.nan), dict(every=2, fps=5)])
def test_iter_frames_rejects_bad_sampling(tmp_path, kw):
    path = write_video(tmp_path / "clip.avi", noise_frames(2))
    with pytest.raises(InvalidInputError):
        next(iter_frames(path, **kw))


def test_iter_frames_folder_of_frame_images(tmp_path):
    folder = tmp_path / "clip"
    folder.mkdir()
    for i in (1, 2, 10):  # natural order: frame2 before frame10
        Image.fromarray(np.full((8, 8, 3), i, np.uint8)).save(folder / f"frame{i}.png")
    got = list(iter_frames(folder))
    assert [int(f.image[0, 0, 0]) for f in got] == [1, 2, 10]
    assert all(math.isnan(f.time) for f in got)


@pytest.mark.parametrize("name, words", [
    ("zero_byte_mp4", "empty file"),
    ("truncated_mp4", "truncated"),
    ("text_as_mp4", "not a video"),
    ("audio_only", "no video stream"),
    ("zero_frames", "zero decodable frames"),
])
def test_bad_video_files_raise_video_decode_error_naming_the_file(tmp_path, name, words):
    path = write_bad_videos(tmp_path)[name]
    with pytest.raises(VideoDecodeError, match=words) as info:
        list(iter_frames(path))
    assert str(path) in str(info.value)


def test_truncated_video_with_index_at_the_start_is_detected(tmp_path):
    # "faststart" MP4: the index comes first, so the first half opens and decodes some frames;
    # the frame count the container declares exposes the truncation.
    good = write_video(tmp_path / "good.mp4", noise_frames(30), codec="libx264", faststart=True)
    data = good.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    assert len(list(iter_frames(good))) == 30
    with pytest.raises(VideoDecodeError, match=r"cut\.mp4: truncated video: decoded \d+ of the 30"):
        list(iter_frames(cut))


def test_missing_file_and_empty_folder(tmp_path):
    with pytest.raises(VideoDecodeError, match="not found"):
        list(iter_frames(tmp_path / "nope.mp4"))
    with pytest.raises(VideoDecodeError, match="no frame images"):
        list(iter_frames(tmp_path))


# --- end to end: real MTCNN, tiny random network --------------------------------------


@pytest.fixture(scope="module")
def tiny_model():
    from facelab.models import MultiTaskNet

    import torch

    torch.manual_seed(0)
    model = MultiTaskNet("mobilenetv1_100", emotion_classes=7)
    model.preprocessing["image_size"] = 32
    return model.eval()


@pytest.fixture(scope="module")
def tiny_network(tiny_model):
    """The fp32 runner, prepared once for the whole module (eager: tracing takes seconds)."""
    from facelab.inference.video import face_network

    return face_network(tiny_model, precision="fp32", freeze=False)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    return {
        "face": write_video(folder / "face.mp4", face_frames(6)),
        "no_face": write_video(folder / "no_face.mp4", no_face_frames(5)),
    }


def test_video_with_a_face_end_to_end(tiny_model, tiny_network, clips):
    clip = video_features(clips["face"], tiny_network, batch_frames=4)
    D = tiny_model.num_features
    assert clip.n_frames == 6 and clip.feature_dim == D
    assert clip.has_face.all()  # the astronaut's face is found in every frame
    assert clip.features.shape == (6, D) and np.isfinite(clip.features).all()
    assert [len(b) for b in clip.boxes] == [1] * 6
    # the box sits on the astronaut's face (upper middle of the photo), not on the whole frame
    x1, y1, x2, y2 = clip.boxes[0][0]
    assert 10 < (x2 - x1) < 64 and 10 < (y2 - y1) < 80
    vector, has_face = clip.descriptor()
    assert has_face and vector.shape == (4 * D,) and abs(np.linalg.norm(vector) - 1) < 1e-6


def test_video_features_equal_the_network_on_the_crops(tiny_model, tiny_network, clips):
    """Batched chunks give the same numbers as the plain network on each tight crop alone."""
    import torch

    from facelab.faces import crop_faces
    from facelab.labels import IMAGENET_MEAN, IMAGENET_STD

    clip = video_features(clips["face"], tiny_network, batch_frames=4)
    frames = list(iter_frames(clips["face"]))
    for t in (0, 5):
        crop = crop_faces([frames[t].image], [[tuple(clip.boxes[t][0])]], size=32, policy="tight")
        x = (crop / 255 - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        with torch.inference_mode():
            expected = tiny_model.features(x).numpy()[0]
        np.testing.assert_allclose(clip.features[t], expected, rtol=1e-3, atol=1e-4)


def test_bf16_features_agree_with_fp32(tiny_model, tiny_network, clips):
    from facelab.inference.video import face_network

    bf16_network = face_network(tiny_model, precision="bf16", freeze=False)
    assert bf16_network.precision == "bf16"
    fp32 = video_features(clips["face"], tiny_network, every=2).features
    bf16 = video_features(clips["face"], bf16_network, every=2).features
    cosine = (fp32 * bf16).sum(1) / np.linalg.norm(fp32, axis=1) / np.linalg.norm(bf16, axis=1)
    assert cosine.min() > 0.99


def test_video_without_faces_end_to_end(tiny_model, tiny_network, clips):
    clip = video_features(clips["no_face"], tiny_network, every=2)
    assert clip.n_frames == 3 and not clip.has_face.any()
    assert clip.features.shape == (3, tiny_model.num_features) and not clip.features.any()
    vector, has_face = clip.descriptor()
    assert not has_face and not vector.any()
    X = VideoDescriptor(add_indicator=True).fit_transform([clip])
    assert X[0, -1] == 1.0 and not X[0, :-1].any()


def test_group_mode_keeps_all_faces(tiny_model, tiny_network, tmp_path):
    photo = sample_photo(96)
    two = [np.concatenate([photo, photo[:, ::-1]], axis=1)] * 3  # two faces side by side
    path = write_video(tmp_path / "group.avi", two)
    clip = video_features(path, tiny_network, group=True)
    assert [len(f) for f in clip.per_frame] == [2, 2, 2]
    single = video_features(path, tiny_network, group=False)
    assert [len(f) for f in single.per_frame] == [1, 1, 1]
    vector, has_face = clip.descriptor(l2_normalize=False)
    assert has_face and vector.shape == (4 * tiny_model.num_features,)


def test_bad_file_through_video_features(tiny_network, tmp_path):
    bad = write_bad_videos(tmp_path)
    with pytest.raises(VideoDecodeError, match="truncated"):
        video_features(bad["truncated_mp4"], tiny_network)


def test_cache_second_call_does_not_run_the_network(tiny_network, clips, tmp_path, monkeypatch):
    from facelab.inference.analyze import TorchNetwork

    calls = {"n": 0}
    original = TorchNetwork.features

    def counting(self, crops):
        calls["n"] += 1
        return original(self, crops)

    monkeypatch.setattr(TorchNetwork, "features", counting)
    paths = [clips["face"], clips["no_face"]]
    cache = tmp_path / "cache"
    first = extract_clip_features(paths, tiny_network, cache_dir=cache, progress=False, every=2)
    n_first = calls["n"]
    assert n_first > 0 and not any(c.from_cache for c in first)
    assert len(list(cache.glob("*.npz"))) == 2
    second = extract_clip_features(paths, tiny_network, cache_dir=cache, progress=False, every=2)
    assert calls["n"] == n_first  # nothing recomputed
    assert all(c.from_cache for c in second)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a.features, b.features)
        np.testing.assert_array_equal(a.has_face, b.has_face)
    # other sampling parameters -> another cache entry -> the network runs again
    extract_clip_features(paths[:1], tiny_network, cache_dir=cache, progress=False, every=3)
    assert calls["n"] > n_first


def test_cache_is_shared_between_the_model_and_its_runner(tiny_model, tiny_network, clips, tmp_path,
                                                          monkeypatch):
    import facelab.inference.feature_cache as feature_cache

    extract_clip_features([clips["no_face"]], tiny_network, cache_dir=tmp_path, progress=False)

    def no_build(*args, **kwargs):
        raise AssertionError("the network was prepared although every clip is cached")

    monkeypatch.setattr(feature_cache, "face_network", no_build)
    again = extract_clip_features([clips["no_face"]], tiny_model, cache_dir=tmp_path, progress=False,
                                  precision="fp32")
    assert again[0].from_cache


def test_cache_key_changes_with_the_weights_and_the_file(tiny_model, tmp_path):
    import copy

    import torch

    from facelab.inference.video import clip_cache_key, model_fingerprint

    path = write_video(tmp_path / "a.avi", noise_frames(2))
    other = copy.deepcopy(tiny_model)
    with torch.no_grad():
        next(other.parameters()).add_(1.0)
    h1, h2 = model_fingerprint(tiny_model), model_fingerprint(other)
    assert h1 != h2
    k1 = clip_cache_key(path, h1, {"every": 1})
    assert k1 == clip_cache_key(path, h1, {"every": 1})
    assert k1 != clip_cache_key(path, h2, {"every": 1})
    assert k1 != clip_cache_key(path, h1, {"every": 2})
    write_video(path, noise_frames(3))  # the file changes (size)
    assert k1 != clip_cache_key(path, h1, {"every": 1})


def test_extract_collects_failures_one_entry_per_clip(tiny_network, clips, tmp_path):
    bad = write_bad_videos(tmp_path / "bad")
    paths = [clips["no_face"], bad["text_as_mp4"], bad["zero_frames"]]
    out = extract_clip_features(paths, tiny_network, cache_dir=None, progress=False, errors="collect")
    assert len(out) == 3
    assert isinstance(out[0], ClipFeatures)
    assert isinstance(out[1], ClipFailure) and "notes.mp4" in out[1].error
    assert isinstance(out[2], ClipFailure) and "zero" in out[2].error
    with pytest.raises(VideoDecodeError):
        extract_clip_features(paths, tiny_network, cache_dir=None, progress=False)


def test_save_and_load_clip_features_round_trip(tmp_path):
    clip = ClipFeatures("x.mp4", True, np.array([0, 2, 4]), np.array([0.0, 0.2, 0.4]),
                        [np.ones((2, 3), np.float32), np.zeros((0, 3), np.float32), np.full((1, 3), 5, np.float32)],
                        [np.zeros((2, 4), np.float32), np.zeros((0, 4), np.float32), np.ones((1, 4), np.float32)], 3)
    save_clip_features(clip, tmp_path / "c.npz")
    back = load_clip_features(tmp_path / "c.npz")
    assert back.group and back.feature_dim == 3 and back.path == "x.mp4"
    assert [f.shape for f in back.per_frame] == [(2, 3), (0, 3), (1, 3)]
    np.testing.assert_array_equal(back.has_face, [True, False, True])
    np.testing.assert_array_equal(back.descriptor().vector, clip.descriptor().vector)


# --- the feature-set file and the CLI ----------------------------------------------------


def test_feature_set_round_trip(tmp_path):
    from facelab.inference.video import FeatureSet, load_feature_set, save_feature_set

    a = ClipFeatures("a.avi", False, np.array([0, 1]), np.array([0.0, 0.1]),
                     [np.ones((1, 3), np.float32), np.zeros((0, 3), np.float32)],
                     [np.zeros((1, 4), np.float32), np.zeros((0, 4), np.float32)], 3)
    b = ClipFeatures("b.avi", False, np.array([0]), np.array([0.0]), [np.full((1, 3), 2, np.float32)],
                     [np.ones((1, 4), np.float32)], 3)
    fs = FeatureSet([a, b], np.array([4, 1]), np.array(["train", "val"]), np.array(["Happy/a.avi", "Sad/b.avi"]),
                    ("Anger", "Disgust", "Fear", "Happiness", "Neutral", "Sadness", "Surprise"), False,
                    [("c.avi", "truncated")], {"every": 1})
    save_feature_set(fs, tmp_path / "f.npz")
    back = load_feature_set(tmp_path / "f.npz")
    assert back.labels.tolist() == [4, 1] and back.splits.tolist() == ["train", "val"]
    assert back.classes[3] == "Happiness" and back.failed == [("c.avi", "truncated")]
    assert back.meta == {"every": 1}
    np.testing.assert_array_equal(back.clips[0].has_face, [True, False])
    np.testing.assert_array_equal(back.clips[1].features, [[2, 2, 2]])
    clips, y = back.select("val")
    assert len(clips) == 1 and y.tolist() == [1]


def test_load_feature_set_rejects_other_files(tmp_path):
    from facelab.errors import DatasetFormatError
    from facelab.inference.video import load_feature_set

    (tmp_path / "x.npz").write_bytes(b"not a zip")
    with pytest.raises(DatasetFormatError, match="x.npz"):
        load_feature_set(tmp_path / "x.npz")
    np.savez(tmp_path / "y.npz", a=np.ones(2))
    with pytest.raises(DatasetFormatError, match="missing arrays"):
        load_feature_set(tmp_path / "y.npz")
    with pytest.raises(DatasetFormatError, match="not found"):
        load_feature_set(tmp_path / "z.npz")


@pytest.mark.slow
def test_cli_video_features_and_classify_on_afew_like_clips(tiny_model, tmp_path, capsys):
    from facelab.checkpoints import save_checkpoint
    from facelab.apps.cli import main
    from facelab.synth.writers import write_afew
    from facelab.inference.video import load_feature_set

    root = tmp_path / "afew"
    write_afew(root, n_train_per_class=1, n_val_per_class=1, n_frames=2, size=64, workers=1, progress=False)
    (root / "Val" / "Happy" / "broken.avi").write_bytes(b"garbage, not a video")
    ckpt = save_checkpoint(tiny_model, tmp_path / "tiny")
    out = tmp_path / "feats.npz"
    code = main(["video-features", str(root), "--model", str(ckpt), "--out", str(out), "--quiet",
                 "--cache-dir", str(tmp_path / "cache"), "--precision", "fp32"])
    captured = capsys.readouterr()
    assert code == 2  # one clip failed; the rest was written
    assert "broken.avi" in captured.err and captured.err.count("\n") == 1
    fs = load_feature_set(out)
    assert len(fs.clips) == 7 + 7 and not fs.group
    assert sorted(set(fs.splits.tolist())) == ["train", "val"]
    assert [p for p, _ in fs.failed] == [str(root / "Val" / "Happy" / "broken.avi")]
    assert all(c.n_frames == 2 for c in fs.clips)
    assert sum(int(c.has_face.sum()) for c in fs.clips) > 0.5 * 2 * len(fs.clips)
    for classifier in ("svc", "rf"):
        code = main(["video-classify", str(out), "--classifier", classifier, "--trees", "50"])
        text = capsys.readouterr().out
        assert code == 0
        assert "accuracy: " in text and "true \\ predicted" in text
        assert len([line for line in text.splitlines() if line.startswith(("Anger", "Happiness", "Surprise"))]) == 3
    assert main(["video-classify", str(out), "--compare"]) == 0
    text = capsys.readouterr().out
    assert "middle frame" in text and "mean pooling" in text and "chance" in text
    assert main(["video-classify", str(out), "--test-split", "test"]) == 2
    assert "no 'test' clips" in capsys.readouterr().err

"""FaceAnalyzer: rows per face, nothing dropped, bf16 == fp32 within 0.02, fp32 == the plain model.

The model is a small MultiTaskNet (mobilenetv1_100, random init, 64 px crops) whose heads
were trained for a few Adam steps on face-world crops (frozen backbone, like the paper's
stage A), so that its probabilities are far from uniform -- with untrained heads every
probability is ~1/C and any two precisions would "agree" trivially.
The helpers here are also used by test_onnx.py and test_predict_cli.py.
"""
from __future__ import annotations

import copy
import functools

import numpy as np
import pytest
import torch

from facelab.inference.analyze import (
    FaceAnalyzer,
    TorchNetwork,
    batch_bucket,
    bf16_in_cpuinfo,
    cpu_supports_bf16,
    expand_inputs,
    resolve_precision,
    softmax,
)
from facelab.errors import InvalidInputError
from facelab.faces import crop_faces
from facelab.labels import EMOTIONS_8, GENDERS, RACES, age_to_class
from facelab.models import MultiTaskNet

IMG = 64  # crop side used by the test networks (small = fast)


# --- helpers shared with test_onnx.py / test_predict_cli.py ----------------------------------
@functools.lru_cache(maxsize=4)
def face_world(n: int = 16, size: int = 112, seed: int = 0):
    """``n`` face-world photos (RGB uint8), their true boxes and labels (emotion, gender, race, age)."""
    from facelab.synth.people import sample_person
    from facelab.synth.render import render_face, sample_nuisance

    rng = np.random.default_rng(seed)
    images, boxes, labels = [], [], []
    for i in range(n):
        person = sample_person(seed, i)
        emotion = EMOTIONS_8[i % len(EMOTIONS_8)]
        age = int(rng.integers(5, 80))
        r = render_face(person, age=age, emotion=emotion, nuisance=sample_nuisance(rng, 0.3), size=size, rng=rng)
        images.append(r.image)
        boxes.append(r.box)
        labels.append((EMOTIONS_8.index(emotion), person.gender, person.race, age_to_class(age)))
    return images, boxes, np.array(labels)


def tiny_model(*, emotion: bool = True, attributes: bool = True, seed: int = 0) -> MultiTaskNet:
    torch.manual_seed(seed)
    model = MultiTaskNet("mobilenetv1_100", emotion_classes=8 if emotion else None,
                         gender=attributes, race=attributes, age=attributes)
    model.preprocessing["image_size"] = IMG
    return model.eval()


def normalise(model: MultiTaskNet, crops):
    """Crops in [0, 255] -> the model's input (ImageNet mean/std), the textbook way."""
    mean = torch.tensor(model.preprocessing["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(model.preprocessing["std"]).view(1, 3, 1, 1)
    return (crops / 255.0 - mean) / std


def world_crops(size: int = IMG):
    images, boxes, _ = face_world()
    return crop_faces(list(images), [[b] for b in boxes], size=size)


@functools.lru_cache(maxsize=1)
def trained_model(steps: int = 60) -> MultiTaskNet:
    """tiny_model() whose heads were trained for ``steps`` Adam steps on face-world crops
    (backbone frozen, as in the paper's stage A), in eval mode.  Cheap: the features are
    computed once."""
    _, _, labels = face_world()
    model = tiny_model()
    with torch.no_grad():
        x = model.features(normalise(model, world_crops()))
    y = torch.as_tensor(labels)
    opt = torch.optim.Adam(model.heads.parameters(), lr=3e-2)
    for _ in range(steps):
        out = model.forward_heads(x)
        loss = sum(torch.nn.functional.cross_entropy(out[h], y[:, k])
                   for k, h in enumerate(("emotion", "gender", "race", "age")))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def eager_probs(model: MultiTaskNet, crops) -> dict:
    """Reference: the plain fp32 PyTorch model on normalised crops (no facelab tricks)."""
    with torch.no_grad():
        out = model(normalise(model, crops))
    return {h: torch.softmax(v, 1).numpy() for h, v in out.items()}


@pytest.fixture(scope="module")
def model():
    return trained_model()


@pytest.fixture(scope="module")
def fp32(model):
    return FaceAnalyzer(model, precision="fp32")


@pytest.fixture(scope="module")
def bf16(model):
    return FaceAnalyzer(model, precision="bf16")


# --- precision choice ----------------------------------------------------------------------
def test_bf16_flag_parsing():
    assert bf16_in_cpuinfo("processor : 0\nflags : fpu sse avx512f amx_bf16 amx_tile\n")
    assert bf16_in_cpuinfo("flags\t\t: fpu avx512_bf16\n")
    assert bf16_in_cpuinfo("Features : fp asimd bf16 i8mm\n")  # aarch64
    assert not bf16_in_cpuinfo("flags : fpu sse avx2 avx512f avx512bw\n")
    assert not bf16_in_cpuinfo("")


def test_resolve_precision():
    assert resolve_precision("fp32") == "fp32"
    assert resolve_precision("bf16") == "bf16"
    assert resolve_precision("auto") == ("bf16" if cpu_supports_bf16() else "fp32")
    assert resolve_precision("auto", backend="onnx") == "fp32"
    with pytest.raises(InvalidInputError, match="precision"):
        resolve_precision("fp16")
    with pytest.raises(InvalidInputError, match="onnx"):
        resolve_precision("bf16", backend="onnx")


def test_bad_arguments(model):
    with pytest.raises(InvalidInputError, match="batch_size"):
        FaceAnalyzer(model, batch_size=0)
    with pytest.raises(InvalidInputError, match="backend"):
        FaceAnalyzer(model, backend="tensorrt")
    with pytest.raises(InvalidInputError, match="checkpoint path, a model-zoo name or a facelab MultiTaskNet"):
        FaceAnalyzer(object())
    identity_only = MultiTaskNet("mobilenetv1_100", num_identities=3)
    with pytest.raises(InvalidInputError, match="none of the heads"):
        FaceAnalyzer(identity_only)


# --- the network part --------------------------------------------------------------------------
def test_probabilities_are_not_uniform(model):
    """Guard for the agreement tests below: a trained model has confident outputs."""
    probs = eager_probs(model, world_crops())
    assert probs["emotion"].max(1).mean() > 0.3  # uniform would be 0.125
    assert probs["gender"].max(1).mean() > 0.58  # uniform would be 0.5
    assert probs["race"].max(1).mean() > 0.35  # uniform would be 0.2
    assert probs["age"].max(1).mean() > 0.1  # uniform would be 0.01


def test_fp32_equals_the_plain_model(model, fp32):
    """Normalisation folded into one multiply-add, channels_last and the frozen (BN-folded)
    TorchScript backbone change nothing beyond float rounding."""
    crops = world_crops()
    ref = eager_probs(model, crops)
    got = fp32.predict_crops(crops)
    assert set(got) == {"emotion", "age", "gender", "race"}
    for head in got:
        assert got[head].shape == ref[head].shape
        np.testing.assert_allclose(got[head], ref[head], atol=1e-4)
        np.testing.assert_allclose(got[head].sum(1), 1.0, atol=1e-5)


def test_bf16_and_fp32_agree(fp32, bf16):
    """Max probability difference <= 0.02 on face-world crops (issue 8)."""
    assert bf16.networks[0].dtype == torch.bfloat16
    crops = world_crops()
    p32, p16 = fp32.predict_crops(crops), bf16.predict_crops(crops)
    for head in p32:
        diff = np.abs(p32[head] - p16[head]).max()
        assert diff <= 0.02, f"{head}: bf16 differs from fp32 by {diff:.4f}"
    assert not np.array_equal(p32["emotion"], p16["emotion"])  # bf16 really ran


def test_batching_does_not_change_results(fp32):
    crops = world_crops()
    small = copy.copy(fp32)  # same networks, smaller batches (16 faces -> 3+3+3+3+3+1)
    small.batch_size = 3
    a, b = fp32.predict_crops(crops), small.predict_crops(crops)
    for head in a:
        np.testing.assert_allclose(a[head], b[head], atol=1e-5)


def test_other_crop_sizes_are_resized(fp32):
    crops = world_crops(size=2 * IMG)
    probs = fp32.predict_crops(crops)
    assert probs["emotion"].shape == (len(crops), 8)
    resized = torch.nn.functional.interpolate(crops, size=(IMG, IMG), mode="bilinear", antialias=True)
    np.testing.assert_allclose(probs["emotion"], fp32.predict_crops(resized)["emotion"], atol=1e-5)


def test_eager_fallback_matches_frozen(model, fp32):
    eager = TorchNetwork(model, precision="fp32", freeze=False)
    frozen = fp32.networks[0]
    crops = world_crops()[:4]
    got, ref = frozen.logits(crops), eager.logits(crops)
    assert frozen.frozen and not eager.frozen  # the backbone was traced on first use
    assert torch.jit.onednn_fusion_enabled() is False  # the fuser is only on inside calls
    assert isinstance(frozen.backbone, torch.jit.ScriptModule)
    for head, logits in ref.items():
        np.testing.assert_allclose(got[head], logits, atol=1e-4)


def test_batch_buckets():
    assert [batch_bucket(n, 32) for n in (1, 2, 3, 5, 16, 17, 31, 32, 40)] == [1, 2, 4, 8, 16, 32, 32, 32, 40]
    assert [batch_bucket(n, 24) for n in (9, 17, 24)] == [16, 24, 24]


def test_user_model_is_not_modified():
    model = tiny_model(attributes=False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    FaceAnalyzer(model, precision="bf16")
    after = model.state_dict()
    assert all(after[k].dtype == v.dtype and torch.equal(after[k], v) for k, v in before.items())
    assert next(model.parameters()).requires_grad


def test_softmax_and_age_expectation(fp32):
    p = softmax(np.array([[0.0, 0.0], [1000.0, 0.0]]))
    np.testing.assert_allclose(p, [[0.5, 0.5], [1.0, 0.0]], atol=1e-6)
    age_probs = np.zeros((1, 100), np.float32)
    age_probs[0, [29, 39]] = [0.3, 0.1]  # ages 30 and 40; eq. (1) with L=3
    age_probs[0, 0] = 0.05  # age 1
    expected = (30 * 0.3 + 40 * 0.1 + 1 * 0.05) / 0.45
    assert fp32.ages(age_probs)[0] == pytest.approx(expected, rel=1e-5)


# --- images -> rows ---------------------------------------------------------------------------
def _iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_analyze_one_row_per_face_and_per_problem(fp32, tmp_path):
    images, boxes, _ = face_world()
    blank = np.full((120, 160, 3), 128, np.uint8)
    bad = tmp_path / "notes.jpg"
    bad.write_bytes(b"hello, not an image\n")
    inputs = [images[0], images[1], blank, str(tmp_path / "missing.jpg"), bad, images[2]]
    df = fp32.analyze(inputs, names=["a", "b", "blank", "missing", "notes", "c"])

    assert list(df.columns) == fp32.columns()
    assert sorted(set(df["input"])) == list(range(6))  # every input has a row
    by_name = {name: g for name, g in df.groupby("name")}
    for name, k in (("a", 0), ("b", 1), ("c", 2)):
        rows = by_name[name]
        assert (rows["status"] == "ok").all() and len(rows) >= 1
        assert list(rows["face"]) == list(range(len(rows)))
        best = rows.iloc[0]
        assert _iou([best.x1, best.y1, best.x2, best.y2], boxes[k]) > 0.5
        assert 0.9 <= best.det_prob <= 1.0
        assert best.emotion in EMOTIONS_8 and best.gender in GENDERS and best.race in RACES
        assert 1.0 <= best.age <= 100.0
        assert best[[f"emotion_{e}" for e in EMOTIONS_8]].sum() == pytest.approx(1.0, abs=1e-4)
        assert best[[f"race_{r}" for r in RACES]].sum() == pytest.approx(1.0, abs=1e-4)
        assert 0.5 <= best.gender_prob <= 1.0
        assert best.error == ""
    assert len(by_name["blank"]) == 1 and by_name["blank"].iloc[0].status == "no face"
    assert np.isnan(by_name["blank"].iloc[0].x1) and by_name["blank"].iloc[0].error == ""
    for name, word in (("missing", "not found"), ("notes", "text")):
        row = by_name[name]
        assert len(row) == 1 and row.iloc[0].status == "failed"
        assert word in row.iloc[0].error and np.isnan(row.iloc[0].x1)


def test_analyze_rows_match_predict_crops(fp32):
    """The DataFrame holds exactly what the network says about the detected crops."""
    images, _, _ = face_world()
    df = fp32.analyze(list(images[:3]))
    ok = df[df.status == "ok"]
    crops = crop_faces(list(images[:3]), [[tuple(r) for r in g[["x1", "y1", "x2", "y2"]].to_numpy()]
                                          for _, g in ok.groupby("input")], size=IMG)
    probs = fp32.predict_crops(crops)
    np.testing.assert_allclose(ok[[f"emotion_{e}" for e in EMOTIONS_8]].to_numpy(), probs["emotion"], atol=1e-6)
    np.testing.assert_allclose(ok["age"].to_numpy(), fp32.ages(probs["age"]), atol=1e-4)


def test_analyze_folder_and_empty_folder(fp32, tmp_path):
    from PIL import Image

    images, _, _ = face_world()
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(images[3]).save(folder / "b.png")
    Image.fromarray(images[4]).save(folder / "sub" / "a.jpg")
    (folder / "readme.txt").write_text("not an image")
    empty = tmp_path / "empty"
    empty.mkdir()
    df = fp32.analyze([folder, empty])
    names = list(dict.fromkeys(df["name"]))
    assert names == [str(folder / "b.png"), str(folder / "sub" / "a.jpg"), str(empty)]
    assert (df[df.name != str(empty)]["status"] == "ok").all()
    row = df[df.name == str(empty)].iloc[0]
    assert row.status == "failed" and "no images" in row.error


def test_expand_inputs_checks_names():
    with pytest.raises(InvalidInputError, match="names"):
        expand_inputs([1, 2], names=["a"])


def test_bad_input_corpus_gives_one_row_each(fp32, tmp_path):
    """Issue 9: every corpus entry through analyze -> exactly one row with its reason."""
    bad_inputs = pytest.importorskip("bad_inputs")
    corpus = bad_inputs.write_corpus(tmp_path)
    arrays = bad_inputs.bad_arrays()
    names = list(corpus) + list(arrays)
    df = fp32.analyze([str(p) for p in corpus.values()] + list(arrays.values()), names=names)
    assert df.groupby("name").size().to_dict() == {n: 1 for n in names}
    status = dict(zip(df["name"], df["status"]))
    for name in bad_inputs.BAD_IMAGE_ERRORS:
        assert status[name] == "failed", name
    for name in bad_inputs.ODD_IMAGE_SIZES:
        assert status[name] == "no face", name
    errors = dict(zip(df["name"], df["error"]))
    assert all(errors[n] for n in names if status[n] == "failed")


def test_attribute_and_emotion_networks(model):
    """Fig. 1: age/gender/race from the identity network, emotion from the emotion network."""
    attributes = tiny_model(emotion=False, seed=1)
    fa = FaceAnalyzer(attributes, model, precision="fp32")
    assert fa.head_source == {"emotion": 1, "age": 0, "gender": 0, "race": 0}
    crops = world_crops()[:5]
    probs = fa.predict_crops(crops)
    np.testing.assert_allclose(probs["emotion"], eager_probs(model, crops)["emotion"], atol=1e-4)
    np.testing.assert_allclose(probs["gender"], eager_probs(attributes, crops)["gender"], atol=1e-4)
    only_emotion = FaceAnalyzer(tiny_model(attributes=False), precision="fp32")
    assert only_emotion.heads == ["emotion"]
    assert "age" not in only_emotion.columns() and "emotion_Contempt" in only_emotion.columns()


# --- videos -----------------------------------------------------------------------------------
def write_clip(path, frames, fps: int = 5):
    import av

    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.bit_rate = 2_000_000
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_analyze_video_rows_per_frame(fp32, tmp_path):
    images, _, _ = face_world()
    blank = np.full_like(images[0], 90)
    clip = write_clip(tmp_path / "clip.mp4", [images[0], images[1], blank, images[2]])
    df = fp32.analyze_video(clip)
    assert set(df["frame"]) == {0, 1, 2, 3}
    assert df.groupby("frame").size().min() >= 1
    assert (df[df.frame == 2]["status"] == "no face").all() and len(df[df.frame == 2]) == 1
    assert (df[df.frame != 2]["status"] == "ok").all()
    assert df["time"].is_monotonic_increasing
    every2 = fp32.analyze_video(clip, every=2)
    assert set(every2["frame"]) == {0, 2}
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    bad = fp32.analyze_video(broken)
    assert len(bad) == 1 and bad.iloc[0].status == "failed" and "broken.mp4" in bad.iloc[0].error

"""ONNX export and the onnxruntime backend: same outputs as PyTorch fp32 within 1e-4."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from facelab.inference.analyze import FaceAnalyzer  # noqa: E402
from facelab.checkpoints import save_checkpoint  # noqa: E402
from facelab.apps.cli import main  # noqa: E402
from facelab.errors import CheckpointError, InvalidInputError  # noqa: E402
from facelab.data.tensors import FaceTensors  # noqa: E402
from facelab.inference.onnx_export import OnnxNetwork, export_onnx  # noqa: E402
from facelab.inference.runtime import Runner, make_network  # noqa: E402
from facelab.training.evaluate import evaluate_emotion, predict  # noqa: E402
from test_analyze import IMG, face_world, normalise, trained_model, world_crops  # noqa: E402


@pytest.fixture(scope="module")
def model():
    return trained_model()


@pytest.fixture(scope="module")
def onnx_file(model, tmp_path_factory):
    return export_onnx(model, tmp_path_factory.mktemp("onnx") / "net.onnx")


def test_export_is_a_valid_onnx_model(onnx_file, model):
    proto = onnx.load(str(onnx_file))
    onnx.checker.check_model(proto)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    assert [i.name for i in proto.graph.input] == ["image"]
    assert [o.name for o in proto.graph.output] == list(model.heads) + ["features"]
    batch_dim = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param and not batch_dim.dim_value  # dynamic batch axis
    meta = {p.key: p.value for p in proto.metadata_props}
    config = json.loads(meta["facelab_config"])
    assert config["heads"] == model.head_sizes and config["preprocessing"]["image_size"] == IMG
    assert config["labels"]["emotion"] == model.label_names["emotion"]


def test_onnxruntime_equals_pytorch_fp32(onnx_file, model):
    """Raw crops in, logits and features out: |ORT - PyTorch eager fp32| <= 1e-4."""
    net = OnnxNetwork(onnx_file)
    for n in (1, 5):  # the batch axis is dynamic
        crops = world_crops()[:n]
        with torch.no_grad():
            x = normalise(model, crops)
            ref = {h: v.numpy() for h, v in model(x).items()}
            ref_features = model.features(x).numpy()
        got = net.logits(crops)
        assert set(got) == set(ref)
        for head in ref:
            assert got[head].shape == ref[head].shape
            np.testing.assert_allclose(got[head], ref[head], atol=1e-4, rtol=0)
        np.testing.assert_allclose(net.features(crops), ref_features, atol=1e-4, rtol=0)


def test_the_runner_contract_features_then_heads(onnx_file, model):
    """Both runners: heads(features(crops)) == logits(crops); the heads of ONNX Runtime are the same graph's."""
    crops = world_crops()[:4]
    torch_runner = make_network(model, freeze=False)
    for runner in (torch_runner, OnnxNetwork(onnx_file)):
        assert isinstance(runner, Runner) and make_network(runner) is runner
        x = runner.features(crops)
        assert isinstance(x, np.ndarray) and x.dtype == np.float32 and x.shape == (4, model.num_features)
        by_heads, by_logits = runner.heads(x), runner.logits(crops)
        assert set(by_heads) == set(model.heads)
        for head, logits in by_logits.items():
            np.testing.assert_allclose(by_heads[head], logits, atol=1e-5, rtol=0)
    # ONNX heads on torch features equal the torch heads: one contract, either backend
    x = torch_runner.features(crops)
    for head, logits in OnnxNetwork(onnx_file).heads(x).items():
        np.testing.assert_allclose(logits, torch_runner.heads(x)[head], atol=1e-4, rtol=0)


def test_evaluation_runs_an_onnx_file_as_torch_runs_the_checkpoint(onnx_file, model):
    faces = FaceTensors(torch.as_tensor(world_crops()[:6]).to(torch.uint8),
                        {"emotion": torch.arange(6) % model.head_sizes["emotion"]},
                        label_names={"emotion": model.label_names["emotion"]})
    by_torch = predict(model, faces, features=True)
    by_onnx = predict(onnx_file, faces, features=True, backend="onnx")
    np.testing.assert_allclose(by_onnx["features"], by_torch["features"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(by_onnx["logits"]["emotion"], by_torch["logits"]["emotion"], atol=1e-4, rtol=0)
    assert evaluate_emotion(onnx_file, faces, backend="onnx")["accuracy"] == \
        evaluate_emotion(model, faces)["accuracy"]
    with pytest.raises(InvalidInputError, match="runs at"):
        predict(onnx_file, faces, backend="onnx", img_size=IMG + 16)


def test_onnx_backend_of_face_analyzer(onnx_file, model):
    torch_fp32 = FaceAnalyzer(model, precision="fp32")
    from_file = FaceAnalyzer(onnx_file, backend="onnx")
    in_memory = FaceAnalyzer(model, backend="onnx")  # exported on the fly
    assert from_file.precision == "fp32" and from_file.labels("emotion") == torch_fp32.labels("emotion")
    crops = world_crops()
    ref = torch_fp32.predict_crops(crops)
    for analyzer in (from_file, in_memory):
        got = analyzer.predict_crops(crops)
        for head in ref:
            np.testing.assert_allclose(got[head], ref[head], atol=1e-4, rtol=0)
    images, _, _ = face_world()
    a, b = torch_fp32.analyze(list(images[:2])), from_file.analyze(list(images[:2]))
    assert list(a.columns) == list(b.columns) and list(a["emotion"]) == list(b["emotion"])
    np.testing.assert_allclose(a["age"], b["age"], atol=1e-3)


def test_export_other_size_and_cli(model, tmp_path):
    ckpt = save_checkpoint(model, tmp_path / "tiny")
    out = tmp_path / "tiny96.onnx"
    assert main(["export-onnx", str(ckpt), str(out), "--img-size", "96"]) == 0
    net = OnnxNetwork(out)
    assert net.image_size == 96
    assert net.logits(world_crops(size=96)[:2])["emotion"].shape == (2, 8)


def test_bad_onnx_inputs(tmp_path, model):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"this is not a protobuf")
    with pytest.raises(CheckpointError, match="junk.onnx"):
        OnnxNetwork(junk)
    with pytest.raises(CheckpointError, match="not found"):
        OnnxNetwork(tmp_path / "missing.onnx")
    with pytest.raises(InvalidInputError, match="bf16"):
        FaceAnalyzer(model, backend="onnx", precision="bf16")
    with pytest.raises(InvalidInputError, match="opset"):
        export_onnx(model, tmp_path / "old.onnx", opset=13)
    with pytest.raises(InvalidInputError, match="backend='onnx'"):
        FaceAnalyzer(str(junk))


def test_onnx_file_gives_the_video_features_torch_gives(onnx_file, model, tmp_path):
    """ONNX works for video: an exported .onnx file runs the clip pipeline (video_features,
    extract_clip_features) and its per-frame features equal torch fp32's within 1e-4."""
    from test_video import face_frames, write_video

    from facelab.inference.video import extract_clip_features, face_network, video_features

    clip = write_video(tmp_path / "face.mp4", face_frames(4))
    ref = video_features(clip, face_network(model, precision="fp32", freeze=False))
    got = video_features(clip, face_network(onnx_file, backend="onnx"))
    assert ref.has_face.any() and np.array_equal(got.has_face, ref.has_face)
    np.testing.assert_allclose(got.features, ref.features, atol=1e-4, rtol=0)
    # the cache keeps the backends apart and reads an ONNX run back
    cache = tmp_path / "cache"
    first = extract_clip_features([clip], onnx_file, backend="onnx", cache_dir=cache, progress=False)
    again = extract_clip_features([clip], onnx_file, backend="onnx", cache_dir=cache, progress=False)
    by_torch = extract_clip_features([clip], model, precision="fp32", cache_dir=cache, progress=False)
    assert not first[0].from_cache and again[0].from_cache and not by_torch[0].from_cache
    np.testing.assert_allclose(first[0].features, ref.features, atol=1e-4, rtol=0)
    np.testing.assert_array_equal(again[0].features, first[0].features)
    with pytest.raises(InvalidInputError, match="bf16"):
        video_features(clip, onnx_file, backend="onnx", precision="bf16")

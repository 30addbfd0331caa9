"""The upload-and-predict demo, driven without a browser (issue 6 "Show", issue 9 item 2).

Uploads go through the FileUpload widget exactly as the frontend sends them
(``set_state`` with the ipywidgets 8 value format: name, type, size, last_modified,
content), then the tests read the Output area, the status line and the table.
The first group uses a stub analyzer (fast, no CNN); the second runs the real
pipeline: MTCNN + a FaceAnalyzer on an untrained network.
"""
from __future__ import annotations

import base64
import io
import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from facelab.apps.annotate import BOX_COLOUR, OUTLINE_COLOUR
from facelab.apps.demo import DemoModels, FaceDemo, emotion_columns, face_label, faces_table
from facelab.labels import EMOTIONS_8, RACES
from facelab.synth import render_face, render_scene, sample_person

bad_inputs = pytest.importorskip("bad_inputs")


# --- helpers -------------------------------------------------------------------------
def png_bytes(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def jpeg_bytes(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def frontend_upload(app: FaceDemo, name: str, data: bytes, mime: str = "image/png") -> None:
    """What the browser sends when a file is chosen: one dict per file, content as a buffer."""
    app.upload.set_state({"value": [{
        "name": name, "type": mime, "size": len(data), "last_modified": 1_700_000_000_000,
        "content": memoryview(data),
    }]})


def output_png(app: FaceDemo) -> Image.Image:
    images = [o["data"]["image/png"] for o in app.output.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 1
    return Image.open(io.BytesIO(base64.b64decode(images[0])))


def output_html(app: FaceDemo) -> str:
    return "".join(o["data"].get("text/html", "") for o in app.output.outputs)


@pytest.fixture(scope="module")
def face_photo():
    """A face-world photo (RGB) of one smiling person and its true face box."""
    return render_face(sample_person(0, 3), age=35.0, emotion="Happiness", size=256)


# --- a stub with FaceAnalyzer's columns ------------------------------------------------
def stub_analyze(images, names=None):
    """One face in the middle of every image (none in a flat image); fixed probabilities."""
    rows = []
    for i, (img, name) in enumerate(zip(images, names)):
        base = {"input": i, "name": name}
        if img.std() < 1.0:
            rows.append({**base, "status": "no face", "error": ""})
            continue
        h, w = img.shape[:2]
        probs = np.array([0.02, 0.01, 0.02, 0.05, 0.70, 0.12, 0.03, 0.05])
        row = {**base, "face": 0, "x1": 0.25 * w, "y1": 0.2 * h, "x2": 0.75 * w, "y2": 0.85 * h, "det_prob": 0.99,
               "emotion": "Happiness", **{f"emotion_{e}": p for e, p in zip(EMOTIONS_8, probs)},
               "age": 34.6, "gender": "Female", "gender_prob": 0.81, "race": "Asian",
               **{f"race_{r}": p for r, p in zip(RACES, (0.1, 0.1, 0.6, 0.1, 0.1))},
               "status": "ok", "error": ""}
        rows.append(row)
    return pd.DataFrame(rows)


@pytest.fixture()
def app():
    return FaceDemo({"stub": stub_analyze})


# --- the UI with a stub analyzer -------------------------------------------------------
def test_real_image_then_broken_file_then_real_image(app, face_photo):
    frontend_upload(app, "smile.png", png_bytes(face_photo.image))
    assert app.status_kind == "ok" and "smile.png: 1 face found" in app.status
    assert app.upload.value == ()  # bytes released, the same file can be chosen again
    shown = output_png(app)
    assert shown.size == (640, 640)  # 256 px photo enlarged for display (2.5x)
    # the box is drawn in the colour-blind-safe blue where the face is, with a dark outline
    arr = np.asarray(shown)
    assert (arr[int(0.5 * 640), int(0.25 * 640) - 2:int(0.25 * 640) + 3] == BOX_COLOUR).all(axis=1).any()
    assert (arr[int(0.5 * 640), int(0.25 * 640) - 2:int(0.25 * 640) + 3] == OUTLINE_COLOUR).all(axis=1).any()
    html = output_html(app)
    assert "Happiness 70%, Neutral 12%, Fear 5%" in html  # emotion with its top-3 probabilities
    assert "35 y" in html and "Female 81%" in html and "Asian 60%" in html
    assert len(app.last_result) == 1 and app.last_table.shape == (1, 6)

    truncated = png_bytes(face_photo.image)[:3000]
    frontend_upload(app, "broken.png", truncated)
    assert app.status_kind == "error"
    assert app.status.startswith("Not a readable image. broken.png:") and "truncated" in app.status
    assert "Traceback" not in app.status_line.value and "broken.png" in app.status_line.value
    assert app.output.outputs == () and app.last_result is None

    frontend_upload(app, "again.jpg", jpeg_bytes(face_photo.image), "image/jpeg")
    assert app.status_kind == "ok" and "again.jpg: 1 face found" in app.status
    assert "Happiness 70%" in output_html(app)
    assert [kind for _, kind in app.history] == ["ok", "error", "ok"]


@pytest.mark.parametrize("name", sorted(set(bad_inputs.BAD_IMAGE_ERRORS) - {"directory", "missing"}))
def test_every_bad_file_of_the_corpus_gives_a_message_and_the_app_keeps_working(app, tmp_path, name, face_photo):
    path = bad_inputs.write_bad_images(tmp_path)[name]
    result = app.handle_upload(path.name, path.read_bytes())
    assert result is None and app.status_kind == "error"
    headline = {"ImageTooLarge": "File too large", "UnsupportedFormatError": "Unsupported format",
                "ImageDecodeError": "Not a readable image"}[bad_inputs.BAD_IMAGE_ERRORS[name]]
    assert app.status.startswith(f"{headline}. {path.name}:")
    assert bad_inputs.BAD_IMAGE_WORDS[name].lower() in app.status.lower()
    frontend_upload(app, "ok.png", png_bytes(face_photo.image))
    assert app.status_kind == "ok" and len(app.last_table) == 1


def test_upload_over_the_size_limit_is_refused_before_decoding(face_photo):
    app = FaceDemo({"stub": stub_analyze}, max_upload_mb=0.01)
    data = png_bytes(face_photo.image)
    assert len(data) > 10_000
    frontend_upload(app, "big.png", data)
    assert app.status_kind == "error"
    assert app.status.startswith("File too large. big.png: the file is") and "limit of 0.01 MB" in app.status
    small = png_bytes(face_photo.image[:40, :40])
    frontend_upload(app, "small.png", small)
    assert app.status_kind == "ok"


def test_photo_without_a_face_is_a_warning_not_an_error(app):
    frontend_upload(app, "wall.png", png_bytes(np.full((64, 96, 3), 128, np.uint8)))
    assert app.status_kind == "warning" and "wall.png: no face found" in app.status
    assert output_png(app).size == (288, 192)  # the photo is still shown, 3x, without boxes
    assert output_html(app) == "" and app.last_table.empty and len(app.last_result) == 1


def test_analyzer_failures_are_messages_too(face_photo):
    def crashing(images, names=None):
        raise RuntimeError("CUDA out of memory")

    def failure_row(images, names=None):
        return pd.DataFrame([{"input": 0, "name": names[0], "status": "failed",
                              "error": f"{names[0]}: detector failed; try a smaller photo"}])

    app = FaceDemo({"crashing": crashing, "failure row": failure_row, "stub": stub_analyze})
    data = png_bytes(face_photo.image)
    frontend_upload(app, "x.png", data)
    assert app.status_kind == "error" and "Unexpected error (RuntimeError" in app.status
    assert "CUDA out of memory" in app.status
    app.model_choice.value = "failure row"  # switching the model re-runs the last upload
    assert app.status_kind == "error" and app.status == "Cannot process this file. x.png: detector failed; try a smaller photo"
    app.model_choice.value = "stub"
    assert app.status_kind == "ok" and "model stub" in app.status


def test_missing_checkpoint_is_reported_in_the_app(tmp_path, face_photo):
    models = DemoModels({"gone": tmp_path / "nothing.safetensors", "stub": stub_analyze},
                        notes={"gone": "a model that was never trained"})
    app = FaceDemo(models)
    assert "never trained" in app.note_line.value
    app.handle_upload("a.png", png_bytes(face_photo.image))
    assert app.status_kind == "error" and app.status.startswith("Model could not be loaded.")
    app.model_choice.value = "stub"
    assert app.note_line.value == "" and app.status_kind == "ok"


def test_label_and_table_helpers():
    df = stub_analyze([np.random.default_rng(0).integers(0, 255, (50, 50, 3), dtype=np.uint8)], ["a"])
    assert set(emotion_columns(df)) == set(EMOTIONS_8)
    assert face_label(df.iloc[0]) == "Happiness 70% | 35 y | Female | Asian"
    table = faces_table(pd.concat([df, pd.DataFrame([{"input": 1, "name": "b", "status": "no face"}])]))
    assert list(table["face"]) == [1]  # the no-face row is not a face


# --- the real pipeline: MTCNN + FaceAnalyzer ---------------------------------------------
@pytest.fixture(scope="module")
def real_app():
    pytest.importorskip("facenet_pytorch")
    from facelab.apps.demo import default_models

    models = default_models(cache_dir="/nonexistent-facelab-cache", train_seconds=0, precision="fp32")
    return FaceDemo(models)


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def test_real_pipeline_face_world_photo_broken_file_scene(real_app, face_photo):
    (name,) = real_app.models
    assert name.startswith("UNTRAINED")
    assert "UNTRAINED network" in real_app.note_line.value  # said clearly in the UI

    frontend_upload(real_app, "smile.png", png_bytes(face_photo.image))
    assert real_app.status_kind == "ok" and "smile.png: 1 face found" in real_app.status
    row = real_app.last_result.iloc[0]
    assert iou([row.x1, row.y1, row.x2, row.y2], face_photo.box) > 0.6  # MTCNN finds the rendered face
    assert row.det_prob > 0.9 and row.emotion in EMOTIONS_8 and 1 <= row.age <= 100
    assert math.isclose(sum(row[f"emotion_{e}"] for e in EMOTIONS_8), 1.0, abs_tol=1e-4)
    html = output_html(real_app)
    assert html.count("<tr") == 2 and row.emotion in html  # header + one face
    assert output_png(real_app).size == (640, 640)

    frontend_upload(real_app, "holiday.jpg", b"<html><body>404</body></html>", "image/jpeg")
    assert real_app.status_kind == "error" and "holiday.jpg" in real_app.status and "HTML" in real_app.status
    assert real_app.output.outputs == ()

    scene = render_scene(np.random.default_rng(3), n_faces=3, face_px=(90, 140))
    frontend_upload(real_app, "group.jpg", jpeg_bytes(scene.image), "image/jpeg")
    assert real_app.status_kind == "ok"
    found = real_app.last_result
    assert len(found) == len(scene.boxes) == len(real_app.last_table)
    for box in scene.boxes:  # every true face has a detected box on it
        assert max(iou(box, r) for r in found[["x1", "y1", "x2", "y2"]].to_numpy()) > 0.5


def test_real_pipeline_video_upload_uses_the_first_frame(real_app, tmp_path):
    from facelab.synth.clips import render_single_clip, write_clip

    clip = tmp_path / "clip.mp4"
    write_clip(clip, render_single_clip(sample_person(0, 5), "Surprise", n_frames=6, size=160,
                                        rng=np.random.default_rng(0), nuisance_level=0.0))
    frontend_upload(real_app, "clip.mp4", clip.read_bytes(), "video/mp4")
    assert real_app.status_kind == "ok" and "clip.mp4: 1 face found" in real_app.status

    frontend_upload(real_app, "cut.mp4", clip.read_bytes()[:200], "video/mp4")
    assert real_app.status_kind == "error" and real_app.status.startswith("Not a readable video. cut.mp4:")
    assert str(tmp_path) not in real_app.status and "facelab-demo-" not in real_app.status


# --- which models the demo offers ------------------------------------------------------------
def test_default_models_pairs_the_course_checkpoints_and_ignores_others(tmp_path):
    import os

    from facelab.checkpoints import save_checkpoint
    from facelab.apps.demo import course_checkpoints, default_models, tiny_model_path, untrained_model
    from facelab.models import MultiTaskNet

    def save(name, mtime, **heads):
        path = save_checkpoint(MultiTaskNet("lcnet_050", **heads), tmp_path / name)
        os.utime(path, (mtime, mtime))
        return path

    bench = save("bench_video_emotion", 300, emotion_classes=8)
    assert course_checkpoints(tmp_path) == []  # an emotion network alone is not Fig. 1
    old_emotion = save("04_emotion_old", 100, emotion_classes=8)
    gender_only = save("03_gender_only", 250, gender=True)
    attributes = save("03_attributes", 200, age=True, gender=True, race=True)
    assert course_checkpoints(tmp_path) == [attributes, old_emotion]  # not bench_*, not gender-only
    seven = save("04_emotion_7", 400, emotion_classes=7)
    assert course_checkpoints(tmp_path) == [attributes, old_emotion]  # all 8 emotions beat a newer 7-class net
    emotion = save("04_emotion", 500, emotion_classes=8)
    assert course_checkpoints(tmp_path) == [attributes, emotion]  # the newest of each kind
    recipe = {"crop": "tight", "weighted": False, "epochs": [1, 6]}
    course_recipe = save_checkpoint(MultiTaskNet("lcnet_050", emotion_classes=8), tmp_path / "course_emotion",
                                    extra_config={"recipe": recipe})
    os.utime(course_recipe, (600, 600))
    for k, (name, change) in enumerate((("rerun", {"run_seed": 1}), ("shorter", {"epochs": [1, 1]}))):
        path = save_checkpoint(MultiTaskNet("lcnet_050", emotion_classes=8), tmp_path / f"course_emotion_{name}",
                               extra_config={"recipe": {**recipe, **change}})
        os.utime(path, (700 + k, 700 + k))
    assert course_checkpoints(tmp_path) == [attributes, course_recipe]  # not notebook 04's newer, shorter runs
    for path in tmp_path.glob("course_emotion*"):
        path.unlink()
    assert bench.exists() and gender_only.exists() and seven.exists()

    save_checkpoint(untrained_model(), tiny_model_path(tmp_path))
    models = default_models(tmp_path, train_seconds=0, precision="fp32")
    assert list(models) == ["course: face world (03_attributes + 04_emotion)",
                            "course: tiny demo model, face world (lcnet_050, 48 px)"]
    course = models["course: face world (03_attributes + 04_emotion)"]
    assert course.heads == ["emotion", "age", "gender", "race"] and len(course.labels("emotion")) == 8
    assert "03_attributes.safetensors" in models.notes[next(iter(models))]


def test_face_world_networks_carry_a_notice_and_hide_age_gender_race(face_photo):
    pytest.importorskip("facenet_pytorch")
    from conftest import tiny_model

    from facelab.inference.analyze import FaceAnalyzer
    from facelab.apps.demo import FACE_WORLD_NOTICE
    from facelab.labels import FACE_WORLD

    course = tiny_model(emotion_classes=8, gender=True, race=True, age=True)
    course.trained_on = FACE_WORLD
    unknown = tiny_model(emotion_classes=8, gender=True, race=True, age=True)  # trained_on not recorded
    app = FaceDemo({"course": FaceAnalyzer(course, precision="fp32"), "other": FaceAnalyzer(unknown, precision="fp32")})
    assert "drawn faces" in app.notice.value and app.face_world_heads == ["emotion", "age", "gender", "race"]
    assert app.show_attributes.layout.display is None  # the box is offered
    app.handle_upload("face.png", png_bytes(face_photo.image))
    assert app.status_kind == "ok"
    assert list(app.last_table.columns) == ["face", "box (x1, y1, x2, y2)", "emotion (top-3)"]  # hidden
    assert {"age", "gender", "race"} <= set(app.last_result.columns)  # computed, only not shown
    app.show_attributes.value = True  # ticking the box shows them (the last upload is shown again)
    assert list(app.last_table.columns)[-3:] == ["age", "gender", "race"] and " y" in app.last_table["age"].iloc[0]
    app.show_attributes.value = False
    app.model_choice.value = "other"
    assert app.notice.value == "" and app.show_attributes.layout.display == "none"
    assert list(app.last_table.columns)[-3:] == ["age", "gender", "race"]  # not known to be face-world: shown
    app.model_choice.value = "course"
    assert "(the built-in face world): its answers on real photos are not meaningful" in app.notice.value
    assert FACE_WORLD_NOTICE.startswith("Trained on drawn faces")

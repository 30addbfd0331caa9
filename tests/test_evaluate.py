"""Metrics, the 7-of-8 emotion evaluation, the LFW protocol of Table 1, batched inference."""
import numpy as np
import pytest
import torch

from facelab.metrics import log_prior, prior_corrected_accuracy
from facelab import labels as L
from facelab.errors import ImageDecodeError, InvalidInputError
from facelab.training.evaluate import (
    age_mae, balanced_accuracy, classification_metrics, drop_contempt, emotion_metrics, evaluate_attributes,
    evaluate_identity, extract_features, lfw_identification, metrics_table, predict, softmax,
)
from facelab.checkpoints import save_checkpoint
from facelab.data.tensors import normalize, resize_faces
from facelab.inference.runtime import make_network
from conftest import tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")


def test_accuracy_balanced_accuracy_and_confusion():
    # 4 images of class 0 (3 right), 1 image of class 1 (wrong)
    scores = np.array([[1, 0], [1, 0], [1, 0], [0, 1], [1, 0]], dtype=float)
    y = np.array([0, 0, 0, 0, 1])
    m = classification_metrics(scores, y, ["a", "b"])
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["balanced_accuracy"] == pytest.approx((3 / 4 + 0 / 1) / 2)
    assert m["confusion_matrix"].tolist() == [[3, 1], [1, 0]]
    assert balanced_accuracy([0, 1, 1], [0, 1, 0]) == pytest.approx((1 + 0.5) / 2)


def test_age_mae_argmax_and_expectation():
    # ages 1..4; P = (0.1, 0.5, 0.4, 0.0); true age 3
    probs = np.array([[0.1, 0.5, 0.4, 0.0]])
    m = age_mae(probs, [3], top_l=2)
    assert m["mae_argmax"] == pytest.approx(1.0)  # argmax age 2
    assert m["mae"] == pytest.approx(abs((2 * 0.5 + 3 * 0.4) / 0.9 - 3))  # eq. (1) with L = 2: 2.444...


def test_drop_contempt_renormalises_the_seven_scores():
    probs8 = np.array([[0.1, 0.5, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05]])  # Contempt (index 1) = 0.5
    probs7 = drop_contempt(probs8)
    assert probs7.shape == (1, 7)
    assert probs7[0].tolist() == pytest.approx([0.2, 0.2, 0.2, 0.1, 0.1, 0.1, 0.1])


def test_emotion_metrics_eight_class_model_seven_class_view():
    logits = np.log(np.array([
        [0.1, 0.5, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05],  # true Anger: 8-class argmax Contempt, 7-class Anger
        [0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0],      # true Happiness: right
        [0.0, 0.9, 0.0, 0.0, 0.0, 0.1, 0.0, 0.0],      # true Contempt: right in 8 classes, left out of 7
    ]) + 1e-9)
    y = np.array([L.EMOTIONS_8.index("Anger"), L.EMOTIONS_8.index("Happiness"), L.EMOTIONS_8.index("Contempt")])
    m = emotion_metrics(logits, y, L.EMOTIONS_8)
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert m["7class_accuracy"] == pytest.approx(1.0) and m["7class_n"] == 2 and m["7class_excluded"] == 1
    # a 7-class dataset evaluated with the 8-class model: classes matched by name
    y7 = np.array([L.EMOTIONS_7.index("Anger"), L.EMOTIONS_7.index("Happiness")])
    m7 = emotion_metrics(logits[:2], y7, L.EMOTIONS_8, L.EMOTIONS_7)
    assert m7["accuracy"] == pytest.approx(1.0) and m7["classes"] == list(L.EMOTIONS_7)


def clusters(n_people=20, per_person=4, noise=0.1, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_people, dim))
    labels = np.repeat(np.arange(n_people), per_person)
    return centres[labels] + noise * rng.normal(size=(len(labels), dim)), labels


def test_lfw_protocol_on_separated_clusters_is_perfect():
    feats, people = clusters(noise=0.05)
    # add 3 people with a single photo: they take no part
    feats = np.vstack([feats, np.random.default_rng(1).normal(size=(3, 16))])
    people = np.concatenate([people, [100, 101, 102]])
    r = lfw_identification(feats * 7.0, people, n_splits=10, seed=0)  # scale does not matter (L2-normalised)
    assert r["accuracy"] == 1.0 and r["std"] == 0.0 and len(r["accuracies"]) == 10
    assert r["n_people"] == 20 and r["n_probes"] == 20 * 3 and r["excluded_images"] == 3


def test_lfw_protocol_noisy_clusters_mean_and_std():
    feats, people = clusters(noise=1.2, seed=2)
    r = lfw_identification(feats, people, n_splits=10, seed=0)
    assert 0.1 < r["accuracy"] < 0.95  # neither chance (1/20) nor perfect
    assert r["std"] == pytest.approx(np.std(r["accuracies"])) and r["std"] > 0
    assert r == lfw_identification(feats, people, n_splits=10, seed=0)  # same seed, same splits
    assert r["accuracies"] != lfw_identification(feats, people, n_splits=10, seed=1)["accuracies"]
    names = np.array([f"person_{p}" for p in people])  # string labels work the same
    assert lfw_identification(feats, names, seed=0)["accuracy"] == r["accuracy"]


def test_lfw_gallery_has_one_photo_per_person():
    # A: two photos at (1, 0).  B: two photos at (0, 1) and an odd one at (1, 0.01), near A.
    feats = np.array([[1, 0], [1, 0], [0, 1], [0, 1], [1, 0.01]])
    people = np.array(["A", "A", "B", "B", "B"])
    r = lfw_identification(feats, people, n_splits=60, seed=0)
    # B's gallery photo is (0, 1) in 2/3 of the splits: then the odd photo is a probe and goes
    # to A -> accuracy 2/3.  Otherwise the odd photo is B's gallery photo: every probe is right -> 1.
    assert set(np.round(r["accuracies"], 6)) == {round(2 / 3, 6), 1.0}
    share_perfect = np.mean(np.isclose(r["accuracies"], 1.0))
    assert 0.1 < share_perfect < 0.6
    assert r["n_probes"] == 3 and r["n_people"] == 2


def test_lfw_rejects_bad_input():
    with pytest.raises(InvalidInputError, match="at least 2 people"):
        lfw_identification(np.eye(3), [0, 1, 2])
    with pytest.raises(InvalidInputError, match="NaN"):
        lfw_identification(np.array([[np.nan, 1], [1, 0], [0, 1], [0, 1]]), [0, 0, 1, 1])


class Faces(torch.utils.data.Dataset):
    def __init__(self, n, broken=()):
        rng = np.random.default_rng(0)
        self.images = [rng.integers(0, 255, (20, 20, 3), dtype=np.uint8) for _ in range(n)]
        self.broken = set(broken)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        if i in self.broken:
            raise ImageDecodeError(f"face_{i}.jpg: not an image")
        return self.images[i], {"identity": i % 3, "age": 20 + i, "gender": i % 2, "race": i % 5}


def test_extract_features_keeps_rows_aligned():
    model = tiny_model()
    with pytest.warns(UserWarning, match="1 of 7"):
        feats = extract_features(model, Faces(7, broken={2}), batch_size=3)
    assert feats.shape == (7, model.num_features)
    assert np.isnan(feats[2]).all() and np.isfinite(np.delete(feats, 2, axis=0)).all()
    # batching does not change the features
    with pytest.warns(UserWarning):
        again = extract_features(model, Faces(7, broken={2}), batch_size=7)
    assert np.allclose(np.delete(feats, 2, 0), np.delete(again, 2, 0), atol=1e-5)


def test_predict_and_task_evaluations():
    model = tiny_model(gender=True, race=True, age=True)
    p = predict(model, Faces(6), batch_size=4)
    assert p["logits"]["age"].shape == (6, 100) and p["labels"]["age"].tolist() == list(range(20, 26))
    assert np.allclose(softmax(p["logits"]["gender"]).sum(1), 1)
    m = evaluate_attributes(model, Faces(6))
    assert {"gender_accuracy", "race_balanced_accuracy", "age_mae", "age_mae_argmax"} <= set(m)
    r = evaluate_identity(model, Faces(9), n_splits=3)
    assert r["n_people"] == 3 and r["n_probes"] == 6 and len(r["accuracies"]) == 3
    table = metrics_table(r)
    assert "accuracy" in table["metric"].tolist() and "accuracies" not in table["metric"].tolist()


def test_predict_gives_the_numbers_of_the_module_itself_and_takes_any_model_argument(tmp_path):
    """predict runs the network through the eager fp32 runner: the logits of model(normalize(faces))."""
    model = tiny_model(gender=True, age=True).eval()
    faces = Faces(5)
    images = torch.stack([torch.as_tensor(im).permute(2, 0, 1) for im in faces.images])
    size = model.preprocessing["image_size"]
    with torch.no_grad():
        expected = model(normalize(resize_faces(images, size), model.preprocessing["mean"],
                                   model.preprocessing["std"]))
    path = save_checkpoint(model, tmp_path / "tiny.safetensors")
    for argument in (model, path, make_network(model, freeze=False)):
        p = predict(argument, faces, batch_size=2)
        for head, logits in expected.items():
            np.testing.assert_allclose(p["logits"][head], logits.numpy(), atol=1e-5, rtol=1e-5)
        assert p["label_names"]["gender"] == model.label_names["gender"]


def test_prior_correction_divides_out_the_training_prior():
    # class 0 is 9x as frequent in training; the logits lean to it by about log(9) for every face
    counts = [900, 100]
    logits = np.array([[np.log(9) + 0.5, 0.0], [np.log(9) - 0.5, 0.0], [np.log(9) - 1.0, 0.0]])
    labels = np.array([0, 1, 1])
    assert np.mean(logits.argmax(1) == labels) == pytest.approx(1 / 3)
    assert prior_corrected_accuracy(logits, labels, counts) == pytest.approx(1.0)
    np.testing.assert_allclose(log_prior(counts), np.log([0.9, 0.1]))
    assert np.isfinite(log_prior([10, 0])).all()          # a class never seen counts as seen once

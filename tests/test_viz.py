"""facelab.apps.viz: the plots return figures/axes holding what they should (no image comparison)."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.collections import PathCollection, QuadMesh  # noqa: E402

from facelab.apps import viz
from facelab.errors import InvalidInputError  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


CM = np.array([[8, 2, 0],
               [1, 6, 3],
               [0, 4, 6]])
NAMES = ["Fear", "Surprise", "Neutral"]


def test_row_normalise_gives_recall_on_the_diagonal():
    rates = viz.row_normalise(CM)
    np.testing.assert_allclose(rates.sum(axis=1), 1.0)
    np.testing.assert_allclose(np.diag(rates), [0.8, 0.6, 0.6])
    np.testing.assert_allclose(viz.row_normalise([[0, 0], [1, 3]]), [[0, 0], [0.25, 0.75]])  # empty row stays 0


def test_confusion_heatmap_draws_one_mesh_and_one_number_per_cell():
    ax = viz.confusion_heatmap(CM, NAMES)
    meshes = [c for c in ax.collections if isinstance(c, QuadMesh)]
    assert len(meshes) == 1
    np.testing.assert_allclose(np.asarray(meshes[0].get_array()).reshape(3, 3), viz.row_normalise(CM))
    numbers = [t.get_text() for t in ax.texts]
    assert len(numbers) == 9 and "0.80" in numbers and "0.30" in numbers
    assert [t.get_text() for t in ax.get_xticklabels()] == NAMES
    counts = viz.confusion_heatmap(CM, NAMES, normalize=False)
    assert sorted(t.get_text() for t in counts.texts) == sorted(str(v) for v in CM.ravel())


def test_confusion_heatmap_rejects_bad_input():
    with pytest.raises(InvalidInputError, match="square"):
        viz.confusion_heatmap(np.zeros((2, 3)))
    with pytest.raises(InvalidInputError, match="class names"):
        viz.confusion_heatmap(CM, ["a", "b"])


def test_confused_pairs_adds_both_directions_of_the_row_rates():
    table = viz.confused_pairs(CM, NAMES, k=3)
    assert list(table["pair"]) == ["Surprise/Neutral", "Fear/Surprise", "Fear/Neutral"]
    np.testing.assert_allclose(table["confusion"], [0.3 + 0.4, 0.2 + 0.1, 0.0])
    assert table.loc[0, "a_as_b"] == pytest.approx(0.3) and table.loc[0, "b_as_a"] == pytest.approx(0.4)
    counts = viz.confused_pairs(CM, NAMES, k=1, normalize=False)
    assert counts.loc[0, "pair"] == "Surprise/Neutral" and counts.loc[0, "confusion"] == 7
    with pytest.raises(InvalidInputError):
        viz.confused_pairs(CM, NAMES, k=0)


def _history(shift=0.0):
    return pd.DataFrame({
        "task": "emotion", "stage": ["A", "A", "B", "B", "B"], "epoch": [1, 2, 1, 2, 3],
        "loss": np.array([2.0, 1.8, 1.5, 1.2, 1.0]) + shift, "images": 100, "finished": True,
        "train_acc": [0.2, 0.3, 0.4, 0.5, 0.6], "train_emotion_acc": [0.2, 0.3, 0.4, 0.5, 0.6],
        "val_emotion_acc": [0.2, 0.25, 0.3, 0.4, 0.45], "val_emotion_bal_acc": [0.15, 0.2, 0.3, 0.35, 0.4],
        "seconds": 1.0})


def _data_lines(ax):
    return [line for line in ax.get_lines() if not line.get_label().startswith("_")]


def test_training_curves_one_loss_panel_and_one_metric_panel():
    fig = viz.training_curves(_history())
    loss_ax, metric_ax = fig.axes
    assert [line.get_label() for line in _data_lines(loss_ax)] == ["loss"]
    assert [line.get_label() for line in _data_lines(metric_ax)] == [
        "train_emotion_acc", "val_emotion_acc", "val_emotion_bal_acc"]  # train_acc (a duplicate) left out
    np.testing.assert_allclose(_data_lines(loss_ax)[0].get_ydata(), [2.0, 1.8, 1.5, 1.2, 1.0])
    np.testing.assert_allclose(_data_lines(loss_ax)[0].get_xdata(), [1, 2, 3, 4, 5])
    assert any(t.get_text() == "stage B" for t in loss_ax.texts)  # where stage B starts


def test_training_curves_compares_runs_and_checks_columns():
    fig = viz.training_curves({"eq. (2)": _history(), "plain CE": _history(0.5)}, metrics=["loss", "val_emotion_bal_acc"])
    loss_ax, metric_ax = fig.axes
    assert [line.get_label() for line in _data_lines(loss_ax)] == ["eq. (2): loss", "plain CE: loss"]
    assert len(_data_lines(metric_ax)) == 2
    with pytest.raises(InvalidInputError, match="no column"):
        viz.training_curves(_history(), metrics=["val_gender_acc"])
    with pytest.raises(InvalidInputError):
        viz.training_curves(pd.DataFrame())


def test_face_grid_shows_every_face_once_and_switches_off_empty_cells():
    faces = torch.randint(0, 256, (5, 3, 16, 16), dtype=torch.uint8)
    fig = viz.face_grid(faces, titles=list("abcde"), ncols=3)
    assert len(fig.axes) == 6
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 5 and [ax.get_title() for ax in shown] == list("abcde")
    np.testing.assert_array_equal(shown[1].images[0].get_array(), faces[1].permute(1, 2, 0).numpy())
    hwc = [np.zeros((8, 8, 3), np.uint8)] * 2
    assert sum(bool(ax.images) for ax in viz.face_grid(hwc).axes) == 2
    with pytest.raises(InvalidInputError, match="titles"):
        viz.face_grid(faces, titles=["a"])
    with pytest.raises(InvalidInputError, match="RGB"):
        viz.face_grid([np.zeros((8, 8))])


def test_umap_scatter_one_collection_per_class_with_its_points():
    points = np.arange(20, dtype=float).reshape(10, 2)
    labels = np.array([2, 0, 1, 0, 2, 2, 1, 0, 0, 2])
    ax = viz.umap_scatter(points, labels, label_names={0: "Anger", 1: "Fear", 2: "Happiness"}, title="t")
    collections = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(collections) == 3
    assert [len(c.get_offsets()) for c in collections] == [4, 2, 4]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["Anger", "Fear", "Happiness"]
    names = viz.umap_scatter(points, np.array(["p1", "p2"] * 5), legend=False)
    assert len(names.collections) == 2 and names.get_legend() is None
    with pytest.raises(InvalidInputError):
        viz.umap_scatter(points, labels[:3])


@pytest.mark.slow  # umap-learn's numba code compiles on first use: ~16 CPU-s once per process
def test_umap_embedding_is_seeded_and_keeps_clusters_apart():
    rng = np.random.default_rng(0)
    centres = np.repeat(np.eye(2, 8) * 20.0, 15, axis=0)
    x = centres + rng.normal(size=(30, 8))
    a = viz.umap_embedding(x, n_neighbors=5, random_state=1)
    b = viz.umap_embedding(x, n_neighbors=5, random_state=1)
    assert a.shape == (30, 2)
    np.testing.assert_allclose(a, b)
    from sklearn.metrics import silhouette_score

    assert silhouette_score(a, np.repeat([0, 1], 15)) > 0.5
    with pytest.raises(InvalidInputError):
        viz.umap_embedding(np.full((10, 3), np.nan))

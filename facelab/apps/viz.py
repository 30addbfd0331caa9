"""Plots of the course: confusion matrices, training curves, face grids and UMAP scatter plots.

Every function draws with matplotlib (seaborn for the heatmap) and returns what it drew on
-- an ``Axes`` or a ``Figure`` -- so a notebook can add titles or save it; nothing is shown
or saved here.  Images are RGB everywhere.

* :func:`confusion_heatmap` -- rows = true class, columns = predicted class (seaborn heatmap);
  :func:`confused_pairs` lists the class pairs the model mixes up most (e.g. Fear/Surprise).
* :func:`training_curves` -- the per-epoch history DataFrame of :mod:`facelab.training.train`
  (loss and accuracies against the epoch, stages A/B marked).
* :func:`face_grid` -- a grid of face crops with optional titles.
* :func:`umap_embedding` and :func:`umap_scatter` -- features x -> 2-D UMAP map, one colour
  per class (person or emotion), for the paper's identity-vs-emotion claim.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.preprocessing import StandardScaler

from facelab.errors import InvalidInputError

# matplotlib, seaborn and umap-learn (the course's plotting tools) are imported by the functions
# that draw, so importing this module stays light.

#: Columns of a training history that are not curves.
_NOT_CURVES = {"task", "stage", "epoch", "images", "finished", "seconds"}


def _new_axes(ax, figsize):
    import matplotlib.pyplot as plt

    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=figsize)
    return fig, ax


# =====================================================================================
# Confusion matrices
# =====================================================================================
def _check_confusion(matrix, class_names) -> np.ndarray:
    cm = np.asarray(matrix, dtype=np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise InvalidInputError(f"a confusion matrix must be square (C x C), got shape {cm.shape}")
    if class_names is not None and len(class_names) != cm.shape[0]:
        raise InvalidInputError(f"{len(class_names)} class names for a {cm.shape[0]} x {cm.shape[0]} confusion matrix")
    if not np.isfinite(cm).all() or (cm < 0).any():
        raise InvalidInputError("a confusion matrix holds counts or rates >= 0 (got negative or non-finite values)")
    return cm


def row_normalise(matrix) -> np.ndarray:
    """Each row divided by its total: C[i, j] = fraction of class-i images predicted as j
    (the diagonal is then the per-class recall).  Empty rows stay 0."""
    cm = np.asarray(matrix, dtype=np.float64)
    totals = cm.sum(axis=1, keepdims=True)
    return np.divide(cm, totals, out=np.zeros_like(cm), where=totals > 0)


def confusion_heatmap(matrix, class_names=None, *, normalize: bool = True, ax=None, title: str | None = None,
                      cmap: str = "Blues", annotate: bool = True, figsize=(6, 5)):
    """A seaborn heatmap of a confusion matrix C[i, j] = images of true class i predicted as j.

    ``normalize=True`` shows row fractions (each row sums to 1, the diagonal is each class's
    recall -- what balanced accuracy averages); ``False`` shows the counts.  Returns the Axes.
    """
    import seaborn as sns

    cm = _check_confusion(matrix, class_names)
    shown = row_normalise(cm) if normalize else cm
    names = list(class_names) if class_names is not None else [str(i) for i in range(len(cm))]
    fig, ax = _new_axes(ax, figsize)
    fmt = ".2f" if normalize else ".0f"
    sns.heatmap(shown, annot=annotate, fmt=fmt, cmap=cmap, vmin=0, vmax=1 if normalize else None, square=True,
                xticklabels=names, yticklabels=names, cbar=True, ax=ax, annot_kws={"fontsize": 8})
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title or ("confusion matrix (rows sum to 1)" if normalize else "confusion matrix (counts)"))
    return ax


def confused_pairs(matrix, class_names, k: int = 5, *, normalize: bool = True) -> pd.DataFrame:
    """The ``k`` class pairs {a, b} the model mixes up most, both directions added:
    ``confusion = C[a, b] + C[b, a]`` on the row-normalised matrix (``normalize=True``: the
    rates do not depend on how many images a class has) or on the counts.

    Columns: ``pair`` ("Fear/Surprise"), ``a``, ``b``, ``a_as_b``, ``b_as_a``, ``confusion``;
    largest first (ties in class order).
    """
    cm = _check_confusion(matrix, class_names)
    if class_names is None:
        raise InvalidInputError("confused_pairs needs the class names")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InvalidInputError(f"k={k!r} must be an int >= 1 (number of pairs)")
    rates = row_normalise(cm) if normalize else cm
    names = list(class_names)
    rows = []
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            rows.append({"pair": f"{names[a]}/{names[b]}", "a": names[a], "b": names[b],
                         "a_as_b": float(rates[a, b]), "b_as_a": float(rates[b, a]),
                         "confusion": float(rates[a, b] + rates[b, a])})
    table = pd.DataFrame(rows, columns=["pair", "a", "b", "a_as_b", "b_as_a", "confusion"])
    table = table.sort_values("confusion", ascending=False, kind="stable").head(int(k))
    return table.reset_index(drop=True)


# =====================================================================================
# Training curves
# =====================================================================================
def history_curves(history: pd.DataFrame, metrics=None) -> list[str]:
    """The columns of a training history worth plotting: ``loss`` and every accuracy / MAE
    column (``train_emotion_acc``, ``val_emotion_bal_acc`` ...), or ``metrics`` if given."""
    if metrics is not None:
        missing = [m for m in metrics if m not in history.columns]
        if missing:
            raise InvalidInputError(f"history has no column(s) {missing}; its columns are {list(history.columns)}")
        return list(metrics)
    numeric = [c for c in history.columns if c not in _NOT_CURVES and pd.api.types.is_numeric_dtype(history[c])]
    # "train_acc" duplicates the first "train_<head>_acc" column (facelab.training.train adds it for convenience)
    if "train_acc" in numeric and any(c.startswith("train_") and c.endswith("_acc") and c != "train_acc"
                                      for c in numeric):
        numeric.remove("train_acc")
    return numeric


def training_curves(history, metrics=None, *, labels=None, axes=None, title: str | None = None):
    """Training curves from one or several per-epoch history DataFrames (``facelab.training.train``).

    ``history``: a DataFrame, or a dict {run name: DataFrame} to compare runs (one line per
    run on each panel).  Panel 1 is the loss; panel 2 every other chosen metric (accuracies,
    balanced accuracies, MAE).  The x axis counts epochs over all stages; a dotted line marks
    where a stage starts (stage A: head only, stage B: all weights).  Returns the Figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    runs = dict(history) if isinstance(history, dict) else {labels or "": history}
    if not runs:
        raise InvalidInputError("training_curves: no history given")
    for name, frame in runs.items():
        if not isinstance(frame, pd.DataFrame) or len(frame) == 0:
            raise InvalidInputError(f"training_curves: history {name!r} must be a non-empty DataFrame")
    first = next(iter(runs.values()))
    chosen = history_curves(first, metrics)
    loss_cols = [c for c in chosen if c == "loss" or c.endswith("_loss")]
    other_cols = [c for c in chosen if c not in loss_cols]
    n_panels = int(bool(loss_cols)) + int(bool(other_cols))
    if n_panels == 0:
        raise InvalidInputError(f"training_curves: nothing to plot in columns {list(first.columns)}")
    if axes is None:
        fig, axes = plt.subplots(1, n_panels, figsize=(5.5 * n_panels, 3.6), squeeze=False)
        axes = list(axes[0])
    else:
        axes = list(np.atleast_1d(axes))
        fig = axes[0].figure
        if len(axes) < n_panels:
            raise InvalidInputError(f"training_curves needs {n_panels} axes, got {len(axes)}")
    panels = ([loss_cols] if loss_cols else []) + ([other_cols] if other_cols else [])
    for ax, columns in zip(axes, panels):
        for run, frame in runs.items():
            x = np.arange(1, len(frame) + 1)
            for col in columns:
                if col not in frame.columns:
                    continue
                label = f"{run}: {col}" if run else col
                ax.plot(x, frame[col].to_numpy(dtype=float), marker="o", ms=3, label=label)
        _mark_stages(ax, first)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.set_xlabel("epoch (all stages)")
        ax.set_ylabel("loss" if columns is loss_cols else "metric")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _mark_stages(ax, frame: pd.DataFrame) -> None:
    if "stage" not in frame.columns:
        return
    stages = frame["stage"].astype(str).to_numpy()
    for i in range(1, len(stages)):
        if stages[i] != stages[i - 1]:
            ax.axvline(i + 0.5, color="grey", ls=":", lw=1)
            ax.text(i + 0.55, 0.02, f"stage {stages[i]}", transform=ax.get_xaxis_transform(), fontsize=8,
                    color="grey")


# =====================================================================================
# Face grids
# =====================================================================================
def _as_hwc_uint8(image) -> np.ndarray:
    """A 3 x H x W tensor/array (uint8 or float 0..255) or an H x W x 3 array -> H x W x 3 uint8."""
    arr = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    if arr.ndim == 3 and arr.shape[0] == 3 and arr.shape[-1] != 3:
        arr = arr.transpose(1, 2, 0)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise InvalidInputError(f"a face image must be RGB, H x W x 3 or 3 x H x W; got shape {arr.shape}")
    if arr.dtype != np.uint8:
        arr = np.clip(np.round(arr), 0, 255).astype(np.uint8)
    return arr


def face_grid(images, titles=None, *, ncols: int = 8, size: float = 1.4, title: str | None = None,
              fontsize: float = 8):
    """A grid of face crops (RGB): a list of H x W x 3 arrays or an (N, 3, S, S) tensor.
    ``titles``: one short string per face (e.g. the emotion), in ``fontsize`` points.  Returns the Figure; unused
    cells of the last row are switched off."""
    import matplotlib.pyplot as plt

    faces = [_as_hwc_uint8(im) for im in images]
    if not faces:
        raise InvalidInputError("face_grid: no images given")
    if titles is not None and len(titles) != len(faces):
        raise InvalidInputError(f"face_grid: {len(titles)} titles for {len(faces)} images")
    if isinstance(ncols, bool) or not isinstance(ncols, (int, np.integer)) or ncols < 1:
        raise InvalidInputError(f"ncols={ncols!r} must be an int >= 1")
    ncols = min(int(ncols), len(faces))
    nrows = -(-len(faces) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, (size + 0.25) * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(faces):
            ax.imshow(faces[i])
            if titles is not None:
                ax.set_title(str(titles[i]), fontsize=fontsize)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# =====================================================================================
# UMAP
# =====================================================================================
def umap_embedding(features, *, n_neighbors: int = 10, min_dist: float = 0.1, metric: str = "euclidean",
                   random_state: int = 0, standardize: bool = True) -> np.ndarray:
    """2-D UMAP map of feature vectors x (one row per face), seeded (``random_state``) so
    the same features give the same picture.  ``standardize``: each feature dimension is
    scaled to zero mean, unit variance first (sklearn's StandardScaler), so no single
    dimension dominates the distances.  umap-learn compiles its numba code on first use
    (several seconds once per process)."""
    import umap  # umap-learn: slow to import (numba)

    x = np.asarray(features, dtype=np.float32)
    if x.ndim != 2 or len(x) < 3:
        raise InvalidInputError(f"umap_embedding needs an (N, D) array with N >= 3, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise InvalidInputError("umap_embedding: features contain NaN/inf rows (faces that failed?); drop them first")
    if not 2 <= n_neighbors < len(x):
        raise InvalidInputError(f"n_neighbors={n_neighbors} must be between 2 and N - 1 = {len(x) - 1}")
    if standardize:
        x = StandardScaler().fit_transform(x)
    reducer = umap.UMAP(n_components=2, n_neighbors=int(n_neighbors), min_dist=float(min_dist), metric=metric,
                        random_state=int(random_state), n_jobs=1)
    return reducer.fit_transform(x)


#: Marker shapes cycled through when there are more classes than colours, so that every class
#: keeps its own (colour, marker) pair.
_MARKERS = ("o", "s", "^", "D", "v", "P")


def umap_scatter(embedding, labels, *, label_names=None, ax=None, title: str | None = None,
                 palette: str = "colorblind", s: float = 14, legend: bool = True, annotate: bool = False,
                 fontsize: float = 9, figsize=(5, 4.5)):
    """Scatter a 2-D embedding (N, 2) coloured by ``labels`` (N class indices or names; a
    person or an emotion).  One point collection per class, so the legend names each class.
    ``label_names`` maps an index to its name.  Returns the Axes.

    Colours come from the colour-blind-safe seaborn palette ``palette`` (10 colours); with
    more classes than colours the marker shape changes too, so every class keeps its own
    (colour, marker) pair.  ``annotate=True`` writes each class name at the median of its
    points (readable without telling colours apart; useful for many classes, with
    ``legend=False``).  Legend and annotations use ``fontsize`` points."""
    import matplotlib.patheffects as pe
    import seaborn as sns

    points = np.asarray(embedding, dtype=np.float64)
    labels = np.asarray(labels)
    if points.ndim != 2 or points.shape[1] != 2:
        raise InvalidInputError(f"umap_scatter needs an (N, 2) embedding, got shape {points.shape}")
    if len(labels) != len(points):
        raise InvalidInputError(f"umap_scatter: {len(labels)} labels for {len(points)} points")
    fig, ax = _new_axes(ax, figsize)
    classes = list(dict.fromkeys(labels.tolist()))  # first-seen order
    if all(isinstance(c, (int, np.integer)) for c in classes):
        classes = sorted(classes)
    n = len(classes)
    colours = sns.color_palette(palette)
    for i, c in enumerate(classes):
        mask = labels == c
        name = label_names[c] if label_names is not None else c
        ax.scatter(points[mask, 0], points[mask, 1], s=s, color=colours[i % len(colours)],
                   marker=_MARKERS[(i // len(colours)) % len(_MARKERS)], label=str(name), alpha=0.85,
                   edgecolors="none")
        if annotate:
            x, y = np.median(points[mask], axis=0)
            ax.annotate(str(name), (x, y), ha="center", va="center", fontsize=fontsize, weight="bold",
                        path_effects=[pe.withStroke(linewidth=3, foreground="white")])
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    if legend:
        ax.legend(fontsize=fontsize, markerscale=1.5, loc="best", frameon=True, ncol=1 if n <= 8 else 2)
    return ax


__all__ = ["row_normalise", "confusion_heatmap", "confused_pairs", "history_curves", "training_curves",
           "face_grid", "umap_embedding", "umap_scatter"]

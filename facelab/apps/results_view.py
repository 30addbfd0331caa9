"""The analyze table as people read it: a short label per face and the table the demo shows.

:meth:`facelab.inference.analyze.FaceAnalyzer.analyze` returns one row per face with its box
(``x1, y1, x2, y2``), the emotion with one probability column per class, age (eq. 1, the age
expectation), gender and race.  :func:`face_label` turns a row into the text drawn above its
box (``"Happiness 81% | 31 y | Female | Asian"``), :func:`faces_table` the table into what the
demo shows (the emotion with its top-3 probabilities).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from facelab.labels import EMOTIONS_8, GENDERS, RACES

#: The face box columns of an analyze table.
BOX_COLUMNS = ("x1", "y1", "x2", "y2")


def emotion_columns(df) -> dict[str, str]:
    """``{emotion name: column}`` for the per-class probability columns of an analyze table.

    Accepts the bare class name (``Happiness``) or a prefixed one (``p_Happiness``,
    ``emotion_Happiness``, ``prob_happiness`` ...), in the model's own class order.
    """
    found = {}
    for col in df.columns:
        key = str(col)
        for prefix in ("", "p_", "prob_", "emotion_", "p(", "emotion_prob_"):
            if key.lower().startswith(prefix):
                rest = key[len(prefix):].rstrip(")")
                match = next((e for e in EMOTIONS_8 if e.lower() == rest.lower()), None)
                if match and match not in found:
                    found[match] = col
                    break
    return found


def has_box(row) -> bool:
    """True when a row of the analyze table is a detected face (finite box)."""
    try:
        return all(math.isfinite(float(row[c])) for c in BOX_COLUMNS)
    except (KeyError, TypeError, ValueError):
        return False


def row_error(row) -> str | None:
    """The error text of an analyze row, or None when the row is fine."""
    value = row.get("error") if hasattr(row, "get") else None
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


def top_emotions(row, columns: dict[str, str], k: int = 3) -> list[tuple[str, float]]:
    """The k most probable emotions of one face, ``[(name, probability), ...]``."""
    scores = []
    for name, col in columns.items():
        try:
            p = float(row[col])
        except (TypeError, ValueError):
            continue
        if math.isfinite(p):
            scores.append((name, p))
    scores.sort(key=lambda item: -item[1])
    if not scores and isinstance(row.get("emotion"), str):
        return [(row["emotion"], float("nan"))]
    return scores[:k]


def _fmt_prob(p: float) -> str:
    return "" if not math.isfinite(p) else f" {100 * p:.0f}%"


def _text(row, key) -> str | None:
    value = row.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (int, np.integer)) and key == "gender" and 0 <= value < len(GENDERS):
        return GENDERS[value]
    if isinstance(value, (int, np.integer)) and key == "race" and 0 <= value < len(RACES):
        return RACES[value]
    return str(value)


def _age_text(row) -> str | None:
    try:
        age = float(row.get("age"))
    except (TypeError, ValueError):
        return None
    return f"{age:.0f} y" if math.isfinite(age) else None


def face_label(row, columns: dict[str, str] | None = None) -> str:
    """Short label drawn above a face box, e.g. ``"Happiness 81% | 31 y | Female | Asian"``."""
    columns = emotion_columns(row.to_frame().T) if columns is None else columns
    parts = []
    predicted = row.get("emotion")
    if isinstance(predicted, str) and predicted:
        col = columns.get(predicted)
        parts.append(f"{predicted}{_fmt_prob(float(row[col])) if col is not None else ''}")
    else:
        top = top_emotions(row, columns, k=1)
        if top:
            parts.append(f"{top[0][0]}{_fmt_prob(top[0][1])}")
    parts += [t for t in (_age_text(row), _text(row, "gender"), _text(row, "race")) if t]
    return " | ".join(parts) if parts else "face"


def without_heads(df, heads):
    """The analyze table without the columns of ``heads`` (e.g. hidden face-world age,
    gender and race): ``age``; ``gender``, ``gender_prob``; ``race``, ``race_<Class>`` ..."""
    drop = [c for c in df.columns for h in heads if c == h or str(c).startswith(f"{h}_")]
    return df.drop(columns=drop) if drop else df


def faces_table(df):
    """The table the app shows: one row per detected face with emotion (top-3
    probabilities), valence and arousal (networks that have them), age (eq. 1), gender and
    race (with their probabilities when given).  A head without a column in ``df`` (hidden,
    or not in the model) has no column in the table."""
    columns = emotion_columns(df)
    shown = ["face", "box (x1, y1, x2, y2)", "emotion (top-3)"]
    shown += [h for h in ("valence", "arousal", "age", "gender", "race") if h in df.columns]
    rows = []
    for number, (_, row) in enumerate((r for r in df.iterrows() if has_box(r[1])), start=1):
        top = top_emotions(row, columns, k=3)
        entry = {
            "face": number,
            "box (x1, y1, x2, y2)": ", ".join(f"{float(row[c]):.0f}" for c in BOX_COLUMNS),
            "emotion (top-3)": ", ".join(f"{name}{_fmt_prob(p)}" for name, p in top) or "-",
            "age": _age_text(row) or "-",
        }
        for key in ("valence", "arousal"):
            value = row.get(key)
            entry[key] = f"{float(value):+.2f}" if value is not None and math.isfinite(float(value)) else "-"
        for key in ("gender", "race"):
            text = _text(row, key)
            prob = _class_probability(row, key, text)
            entry[key] = "-" if text is None else f"{text}{_fmt_prob(prob)}"
        rows.append({k: entry[k] for k in shown})
    return pd.DataFrame(rows, columns=shown)


def _class_probability(row, key: str, value: str | None) -> float:
    """Probability of the predicted gender/race if the table carries it."""
    candidates = [f"{key}_prob", f"{key}_p", f"p_{key}"]
    if value is not None:
        candidates += [f"{key}_{value}", f"p_{value}", f"{key}_p_{value}", f"p_{key}_{value}"]
    for col in candidates:
        if col in row.index:
            try:
                return float(row[col])
            except (TypeError, ValueError):
                pass
    return float("nan")


__all__ = ["BOX_COLUMNS", "emotion_columns", "has_box", "row_error", "top_emotions", "face_label", "without_heads",
           "faces_table"]

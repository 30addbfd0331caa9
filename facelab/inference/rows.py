"""The analyzer's result rows: the ``status`` values, the columns and each face's head values, and
one row per face track of a video from its per-frame rows (:meth:`facelab.inference.analyze.FaceAnalyzer.summarize_tracks`)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

#: The ``status`` column: a face was analysed / the image has no face / the input failed.
STATUS_OK, STATUS_NO_FACE, STATUS_FAILED = "ok", "no face", "failed"
#: Heads that output one number (the ``_va_mtl`` networks' valence and arousal), reported as
#: they are; every other head is a classifier, reported through its softmax.
VALUE_HEADS = ("valence", "arousal")


def head_values(probs: dict, k: int, labels: dict) -> dict:
    """The head columns of face ``k``: class and probabilities per classifier head, the value of
    :data:`VALUE_HEADS`, the age in years (``probs["_age_years"]``).  ``labels``: ``{head: names}``."""
    values = {}
    if "emotion" in probs:
        p = probs["emotion"][k]
        names = labels["emotion"]
        values["emotion"] = names[int(p.argmax())]
        values.update({f"emotion_{c}": float(v) for c, v in zip(names, p)})
    for head in VALUE_HEADS:
        if head in probs:
            values[head] = float(probs[head][k, 0])
    if "age" in probs:
        values["age"] = float(probs["_age_years"][k])
    if "gender" in probs:
        p = probs["gender"][k]
        values["gender"] = labels["gender"][int(p.argmax())]
        values["gender_prob"] = float(p.max())
    if "race" in probs:
        p = probs["race"][k]
        names = labels["race"]
        values["race"] = names[int(p.argmax())]
        values.update({f"race_{c}": float(v) for c, v in zip(names, p)})
    return values

def frame_columns(labels: dict, video: bool = False) -> list[str]:
    """The DataFrame columns, in order, for the reported heads' ``labels`` (``{head: names}``)."""
    cols = ["input", "name"] + (["frame", "time"] if video else [])
    cols += ["face"] + (["track"] if video else []) + ["x1", "y1", "x2", "y2", "det_prob"]
    if "emotion" in labels:
        cols += ["emotion"] + [f"emotion_{c}" for c in labels["emotion"]]
    cols += [h for h in VALUE_HEADS if h in labels]
    if "age" in labels:
        cols += ["age"]
    if "gender" in labels:
        cols += ["gender", "gender_prob"]
    if "race" in labels:
        cols += ["race"] + [f"race_{c}" for c in labels["race"]]
    return cols + ["status", "error"]

def rows_frame(rows: list, columns: list, video: bool = False):
    """The rows as a DataFrame with ``columns`` (:func:`frame_columns`), nullable integer columns."""
    df = pd.DataFrame(rows, columns=columns)
    df["face"] = df["face"].astype("Int64")
    if video:
        df["frame"] = df["frame"].astype("Int64")
        df["track"] = df["track"].astype("Int64")
    for col in ("emotion", "gender", "race"):
        if col in df:
            df[col] = df[col].astype(object)
    df["error"] = df["error"].fillna("").astype(str)
    return df


def track_columns(cols: list) -> list[str]:
    """The columns of the per-track rows, in order, from the per-frame ``cols``
    (:meth:`FaceAnalyzer.columns`)."""
    return cols[:2] + ["track", "first_frame", "last_frame", "first_time", "last_time", "frames"] + cols[2:]



def summarize_tracks(df, labels: dict) -> list[dict]:
    """The rows of :meth:`facelab.inference.analyze.FaceAnalyzer.summarize_tracks` (see there): one
    row per face track of each video of a per-frame DataFrame, other rows kept as they are.
    ``labels``: ``{head: class names}`` of the reported heads."""
    rows = [{k: v for k, v in r.items() if not is_missing(v)} for r in df.to_dict("records")]
    out, start = [], 0
    while start < len(rows):
        stop = start
        while stop < len(rows) and rows[stop]["input"] == rows[start]["input"]:
            stop += 1
        group = rows[start:stop]
        out += summarize_video(group, labels) if any("frame" in r for r in group) else group
        start = stop
    return out

def summarize_video(rows, labels: dict) -> list[dict]:
    """The per-frame rows of one video (an iterable, consumed as it streams) -> its
    per-track rows, then its failure row if it has one.  ``labels``: ``{head: class names}``
    of the reported heads."""
    tracks: dict[int, dict] = {}
    base, failed = None, []
    for row in rows:
        base = base or {"input": row["input"], "name": row["name"]}
        if row["status"] == STATUS_FAILED:
            failed.append({k: v for k, v in row.items() if k not in ("frame", "time")})
        elif row["status"] == STATUS_OK:
            acc = tracks.get(row["track"])
            if acc is None:
                acc = tracks[row["track"]] = {"first": row, "last": row, "n": 0, "det": [], "sums": {},
                                              "gender": {}}
            acc["last"], acc["n"] = row, acc["n"] + 1
            if math.isfinite(row.get("det_prob", math.nan)):
                acc["det"].append(row["det_prob"])
            for col, value in row.items():
                if col.startswith(("emotion_", "race_")) or col in ("valence", "arousal", "age"):
                    acc["sums"][col] = acc["sums"].get(col, 0.0) + float(value)
            if "gender" in row:
                votes = acc["gender"].setdefault(row["gender"], [0, 0.0])
                votes[0] += 1
                votes[1] += float(row["gender_prob"])
    out = [track_row(base, track, acc, labels) for track, acc in sorted(tracks.items())]
    if not out and not failed and base is not None:
        out.append({**base, "status": STATUS_NO_FACE, "error": ""})
    return out + failed

def track_row(base: dict, track: int, acc: dict, labels: dict) -> dict:
    """One track's row from what :func:`summarize_video` gathered about it (``acc``)."""
    n = acc["n"]
    row = {**base, "track": track, "first_frame": acc["first"]["frame"], "last_frame": acc["last"]["frame"],
           "first_time": acc["first"]["time"], "last_time": acc["last"]["time"], "frames": n,
           "det_prob": float(np.mean(acc["det"])) if acc["det"] else math.nan}
    row.update({col: total / n for col, total in acc["sums"].items()})
    for head in ("emotion", "race"):
        if head in labels:
            names = labels[head]
            row[head] = names[int(np.argmax([row[f"{head}_{c}"] for c in names]))]
    votes = acc["gender"]  # gender -> [frames that voted for it, sum of their gender_prob]
    if votes:
        majority = max(votes, key=lambda g: votes[g][0])
        total = votes[majority][1]
        if len(labels["gender"]) == 2:  # a frame that voted for the other gave it 1 - gender_prob
            total += sum(k - p for g, (k, p) in votes.items() if g != majority)
        row["gender"], row["gender_prob"] = majority, total / n
    row.update(status=STATUS_OK, error="")
    return row

def track_frame(rows: list, columns: list):
    """The per-track rows as a DataFrame with the ``columns`` of :func:`track_columns`."""
    df = pd.DataFrame(rows, columns=columns)
    for col in ("track", "first_frame", "last_frame", "frames", "face"):
        df[col] = df[col].astype("Int64")
    for col in ("emotion", "gender", "race"):
        if col in df:
            df[col] = df[col].astype(object)
    df["error"] = df["error"].fillna("").astype(str)
    return df


def is_missing(value) -> bool:
    """NaN, None and pandas' NA (what DataFrame.to_dict gives for empty cells)."""
    try:
        return value is None or bool(value != value)
    except TypeError:  # pd.NA cannot be compared to a bool
        return True


__all__ = ["STATUS_OK", "STATUS_NO_FACE", "STATUS_FAILED", "VALUE_HEADS", "head_values", "frame_columns", "rows_frame", "track_columns", "summarize_tracks", "summarize_video",
           "track_row", "track_frame", "is_missing"]

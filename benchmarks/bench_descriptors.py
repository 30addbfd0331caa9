"""Clip descriptors on the face world (issue 5): which video descriptor classifies best.

AFEW-like clips (one person, 7 emotions): the paper's four statistics of the per-frame
features (mean+max+min+std, L2-normalised) against (a) the middle frame alone and (b) mean
pooling alone, each with the same LinearSVC.  VGAF-like clips (2-6 people, Positive /
Neutral / Negative): the paper's group descriptor against always answering the majority
class.  Notebook 06 shows the same comparison on one small split, where one clip moves the
accuracy by several points; here every clip of a larger set is used in ``--splits`` repeated
stratified 2/3 : 1/3 splits, and the script prints the mean +- std over splits and how often
the statistics win.

The per-frame features come from one emotion network: ``--model CKPT``, or by default the
course's cross-entropy emotion network (``facelab.training.course.emotion_model(weighted=False)``,
notebook 04's, cached; trained on first use), the one notebook 06 uses.

    python benchmarks/bench_descriptors.py [--model CKPT] [--afew-n 140] [--vgaf-n 60]
        [--splits 20] [--every 2] [--json build/bench/descriptors.json] [--quick]

``--quick``: a network with random weights on a few clips, 2 splits (a smoke test: the figures mean nothing).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from facelab.checkpoints import load_checkpoint  # noqa: E402
from facelab.data.datasets import read_afew, read_vgaf  # noqa: E402
from facelab.inference.pooling import compare_video_descriptors  # noqa: E402
from facelab.synth.writers import NOTEBOOK_DEFAULTS, ensure_dataset  # noqa: E402
from facelab.inference.video import extract_clip_features  # noqa: E402

from common import machine, write_json  # noqa: E402

STATS = "mean+max+min+std (paper)"


def emotion_network(path: str | None, quick: bool = False):
    """The network whose penultimate features describe each frame: a checkpoint, or the
    course's cross-entropy emotion network (notebook 04; the one notebook 06 uses); ``quick``:
    the course's backbone with random weights."""
    if path:
        return load_checkpoint(path), path
    if quick:
        from facelab.models import MultiTaskNet
        from facelab.training.course import COURSE_BACKBONE, COURSE_IMG_SIZE

        model = MultiTaskNet(COURSE_BACKBONE, pretrained=False, emotion_classes=8).eval()
        model.preprocessing["image_size"] = COURSE_IMG_SIZE
        return model, f"{COURSE_BACKBONE}, random weights (--quick)"
    from facelab.training import course

    return course.emotion_model(weighted=False, progress=False), "facelab.training.course.emotion_model(weighted=False)"


def clip_features(root: Path, reader, model, every: int, group: bool):
    """Features of every clip of both splits, and their labels (train first, then val)."""
    key = "group" if group else "emotion"
    clips, labels = [], []
    for split in ("train", "val"):
        ds = reader(root, split)
        clips += extract_clip_features(ds.paths, model, every=every, group=group, progress=False)
        labels += list(ds.targets(key))
    return clips, np.asarray(labels)


def repeated_comparison(clips, y, *, splits: int, group: bool, seed: int = 0) -> dict:
    """``compare_video_descriptors`` over repeated stratified 2/3 : 1/3 splits of all clips."""
    from sklearn.model_selection import StratifiedShuffleSplit

    runs = []
    for tr, te in StratifiedShuffleSplit(splits, test_size=1 / 3, random_state=seed).split(np.zeros(len(y)), y):
        runs.append(compare_video_descriptors([clips[i] for i in tr], y[tr], [clips[i] for i in te], y[te],
                                              group=group, classifier="svc", seed=seed))
    return {k: np.array([r[k] for r in runs]) for k in runs[0]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="emotion checkpoint (default: the course's CE emotion network)")
    ap.add_argument("--afew-n", type=int, default=140, help="AFEW-like training clips (val adds half as many)")
    ap.add_argument("--vgaf-n", type=int, default=60, help="VGAF-like training clips (val adds half as many)")
    ap.add_argument("--splits", type=int, default=20)
    ap.add_argument("--every", type=int, default=2, help="use every k-th frame")
    ap.add_argument("--json", default=str(REPO / "build" / "bench" / "descriptors.json"))
    ap.add_argument("--quick", action="store_true", help="random network, 14 + 6 clips, 2 splits: a smoke test")
    args = ap.parse_args(argv)
    if args.quick:
        args.afew_n, args.vgaf_n, args.splits, args.every = 14, 6, 2, 4

    t0, info = time.perf_counter(), machine()
    model, model_path = emotion_network(args.model, args.quick)
    afew_root = ensure_dataset("afew", n=args.afew_n, size=NOTEBOOK_DEFAULTS["afew"]["size"], progress=False)
    vgaf_root = ensure_dataset("vgaf", n=args.vgaf_n, size=NOTEBOOK_DEFAULTS["vgaf"]["size"], progress=False)
    clips, y = clip_features(afew_root, read_afew, model, args.every, group=False)
    groups, yg = clip_features(vgaf_root, read_vgaf, model, args.every, group=True)
    face_rate = float(np.mean(np.concatenate([c.has_face for c in clips])))
    print(f"model {model_path}; AFEW-like {len(clips)} clips ({afew_root.name}), face in {face_rate:.1%} of "
          f"sampled frames; VGAF-like {len(groups)} clips ({vgaf_root.name}); {args.splits} stratified splits, "
          f"LinearSVC  [{time.perf_counter() - t0:.0f} s]", flush=True)

    result = {"machine": info, "model": model_path, "quick": args.quick, "afew_clips": len(clips),
              "vgaf_clips": len(groups), "splits": args.splits, "every": args.every, "face_rate": face_rate,
              "afew": {}, "vgaf": {}}
    afew = repeated_comparison(clips, y, splits=args.splits, group=False)
    print("\nAFEW-like (7 emotions)                 accuracy, mean +- std over splits")
    for name, acc in afew.items():
        print(f"  {name:36s} {acc.mean():.1%} +- {acc.std():.1%}")
        result["afew"][name] = {"mean": float(acc.mean()), "std": float(acc.std())}
    for other in ("middle frame", "mean pooling"):
        diff = afew[STATS] - afew[other]
        wins = float(np.mean(diff > 0))
        print(f"  statistics - {other}: {diff.mean():+.1%} on average, statistics better in {wins:.0%} of splits")
        result["afew"][f"stats_minus_{other.replace(' ', '_')}"] = {"mean": float(diff.mean()), "wins": wins}

    vgaf = repeated_comparison(groups, yg, splits=args.splits, group=True)
    print("\nVGAF-like (Positive / Neutral / Negative)")
    for name, acc in vgaf.items():
        print(f"  {name:36s} {acc.mean():.1%} +- {acc.std():.1%}")
        result["vgaf"][name] = {"mean": float(acc.mean()), "std": float(acc.std())}

    stats_ok = all(result["afew"][f"stats_minus_{k}"]["mean"] > 0 for k in ("middle_frame", "mean_pooling"))
    group = vgaf["group mean+std (paper)"] - vgaf["chance (majority class)"]
    print(f"\nclaim: statistics beat the middle frame and mean pooling: {'PASS' if stats_ok else 'FAIL'}; "
          f"group descriptor above chance by {group.mean():+.1%}: {'PASS' if group.mean() > 0.15 else 'FAIL'}")
    result["claims"] = {"statistics_beat_middle_and_mean": stats_ok, "group_above_chance_by": float(group.mean()),
                        "group_pass": bool(group.mean() > 0.15)}
    out = write_json(args.json, result)
    print(f"figures written to {out}  [{time.perf_counter() - t0:.0f} s in all]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``facelab video-features`` and ``facelab video-classify``: per-frame face features of
AFEW-/VGAF-like clips, then clip descriptors (frame statistics) and a classifier on them."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.metrics import confusion_matrix

from facelab.apps.commands import EXIT_INPUT_FAILED, EXIT_OK, report_failure
from facelab.checkpoints import load_checkpoint
from facelab.data.datasets import read_afew, read_vgaf
from facelab.errors import InvalidInputError
from facelab.inference.pooling import FRAME_STATS, compare_video_descriptors, make_video_classifier
from facelab.inference.video import (
    ClipFailure,
    FeatureSet,
    extract_clip_features,
    load_feature_set,
    save_feature_set,
)


def cmd_video_features(args) -> int:

    root = Path(args.root)
    layout = args.format
    if layout == "auto":
        layout = "vgaf" if root.is_dir() and any(root.glob("*_labels.txt")) else "afew"
    reader, label_key = (read_vgaf, "group") if layout == "vgaf" else (read_afew, "emotion")
    group = (layout == "vgaf") if args.group is None else args.group
    model = load_checkpoint(args.model, device=args.device)
    paths, labels, splits, classes, skipped = [], [], [], None, []
    for split in args.splits.split(","):
        dataset = reader(root, split.strip())
        classes = tuple(dataset.classes)
        skipped += dataset.skipped
        for path, lab in dataset.items:
            paths.append(path)
            labels.append(lab[label_key])
            splits.append(split.strip())
    for entry, reason in skipped:
        report_failure(entry, f"skipped by the {layout} reader: {reason}")
    cache_dir = None if args.no_cache else (args.cache_dir or "default")
    results = extract_clip_features(paths, model, group=group, every=args.every, fps=args.fps,
                                    batch_frames=args.batch_frames, cache_dir=cache_dir, precision=args.precision,
                                    device=args.device, errors="collect", progress=not args.quiet)
    keep = [i for i, r in enumerate(results) if not isinstance(r, ClipFailure)]
    failed = [(r.path, r.error) for r in results if isinstance(r, ClipFailure)]
    for path, reason in failed:
        report_failure(path, reason)
    fs = FeatureSet([results[i] for i in keep], [labels[i] for i in keep], [splits[i] for i in keep],
                    [str(paths[i].relative_to(root)) if root in paths[i].parents else str(paths[i]) for i in keep],
                    classes, group, failed + [(e, r) for e, r in skipped],
                    meta={"root": str(root), "layout": layout, "model": str(args.model), "every": args.every,
                          "fps": args.fps})
    save_feature_set(fs, args.out)
    n_frames = sum(c.n_frames for c in fs.clips)
    n_face = sum(int(c.has_face.sum()) for c in fs.clips)
    print(f"{len(fs.clips)} clips ({', '.join(f'{s}: {int(np.sum(np.asarray(fs.splits) == s))}' for s in dict.fromkeys(fs.splits))}), "
          f"{n_frames} sampled frames, {n_face} with a face, {len(failed)} failed -> {args.out}")
    return EXIT_INPUT_FAILED if failed or skipped else EXIT_OK


def confusion_table(y_true, y_pred, classes) -> str:
    """A confusion matrix as a text table: rows = true class, columns = predicted class."""
    cm = confusion_matrix(y_true, y_pred, labels=list(range(len(classes))))
    width = max(6, *(len(c) for c in classes)) + 1
    lines = ["true \\ predicted".ljust(width) + "".join(c[:width - 1].rjust(width) for c in classes)]
    for name, row in zip(classes, cm):
        lines.append(name.ljust(width) + "".join(str(v).rjust(width) for v in row))
    return "\n".join(lines)


def cmd_video_classify(args) -> int:
    fs = load_feature_set(args.features)
    train, y_train = fs.select(args.train_split)
    test, y_test = fs.select(args.test_split)
    for split, clips in ((args.train_split, train), (args.test_split, test)):
        if not clips:
            raise InvalidInputError(f"{args.features}: no '{split}' clips (splits present: "
                                    f"{sorted(set(fs.splits.tolist()))}); pass --train-split/--test-split")
    if len(set(y_train.tolist())) < 2:
        raise InvalidInputError(f"{args.features}: the '{args.train_split}' clips have a single class")
    stats = "group" if fs.group else (tuple(args.stats.split(",")) if args.stats else FRAME_STATS)
    model = make_video_classifier(stats, args.classifier, n_estimators=args.trees, seed=args.seed,
                                  add_indicator=True)
    model.fit(train, y_train)
    pred = model.predict(test)
    descriptor = model[0]
    name = "group mean+std" if fs.group else "+".join(stats)
    print(f"{args.classifier} on {name} descriptors: train {len(train)} clips, test {len(test)} clips "
          f"({int(descriptor.no_face_.sum())} test clips without a face)")
    print(f"accuracy: {np.mean(pred == y_test):.4f}")
    print(confusion_table(y_test, pred, fs.classes))
    if args.compare:
        print("descriptor comparison (same classifier):")
        for label, acc in compare_video_descriptors(train, y_train, test, y_test, group=fs.group,
                                                    classifier=args.classifier, seed=args.seed).items():
            print(f"  {label:<28s} {acc:.4f}")
    return EXIT_OK


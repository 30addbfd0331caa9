"""``facelab synth``, ``prepare``, ``train``, ``evaluate`` and ``tour``: making the course's data
(the face world, crops of a real dataset), training the paper's stages on it and measuring them."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from facelab.apps.commands import EXIT_INPUT_FAILED, EXIT_OK, EXIT_USAGE, report_failure
from facelab.apps.tour import run_tour
from facelab.checkpoints import _json_default, checkpoint_path, load_checkpoint
from facelab.data.datasets import read_affectnet, read_lfw, read_utkface, read_vggface2
from facelab.data.prepare import prepare_dataset
from facelab.errors import DatasetFormatError
from facelab.inference.runtime import make_network
from facelab.labels import FACE_WORLD
from facelab.models import MultiTaskNet
from facelab.synth.preview import save_preview
from facelab.synth.writers import META_FILE, generate
from facelab.training.evaluate import evaluate_attributes, evaluate_emotion, evaluate_identity, metrics_table
from facelab.training.train import train_attributes, train_emotion, train_identity

#: The dataset layout each training task reads (`facelab train TASK --data ROOT`).
TRAIN_DATASETS = {"identity": "VGGFace2", "attributes": "UTKFace", "emotion": "AffectNet"}


def cmd_tour(args) -> int:
    return run_tour(out=args.out)


def cmd_synth(args) -> int:
    """Write a dataset of the built-in face world in a real dataset's format, or a preview sheet."""
    if args.preview:
        path = save_preview(args.preview)
        print(f"wrote {path or args.preview}")
        if args.name is None:
            return EXIT_OK
    if args.name is None or args.root is None:
        print("facelab synth: error: give a dataset name and ROOT (or --preview OUT.png)", file=sys.stderr)
        return EXIT_USAGE
    summary = generate(args.name, args.root, n=args.n, seed=args.seed, size=args.size, workers=args.workers,
                       progress=not args.no_progress)
    print(json.dumps(summary))
    return EXIT_OK


def cmd_prepare(args) -> int:
    report = prepare_dataset(
        args.root, args.out, policy=args.policy, size=args.size, margin=args.margin, workers=args.workers,
        progress=not args.quiet, min_face_size=args.min_face_size, threshold=args.threshold,
        retry_failed=args.retry_failed, boxes_from=args.boxes_from,
    )
    for rel, reason in report.failures:
        report_failure(Path(args.root) / rel, reason)
    print(report.summary())
    return EXIT_INPUT_FAILED if report.failed else EXIT_OK


def _start_model(args):
    """The model a `facelab train` run starts from: --init CKPT, or a fresh --backbone."""
    if args.init:
        return load_checkpoint(args.init)
    if args.task != "identity":
        print(f"facelab: note: training {args.task} from a fresh {args.backbone} (no --init identity checkpoint)",
              file=sys.stderr)
    return MultiTaskNet(args.backbone, pretrained=args.pretrained)


def _read_split(reader, root, split, **kw):
    """The reader's dataset for `split`, or None when the dataset has no such split."""
    try:
        return reader(root, split, **kw)
    except DatasetFormatError:
        return None


def trained_on_label(root, task: str) -> str:
    """``trained_on`` of a network trained on dataset folder ``root``: the face world when the
    folder was written by ``facelab synth`` (it holds the face world's meta file), else the
    layout's dataset name and the folder's name."""
    root = Path(root)
    if any((folder / META_FILE).is_file() for folder in (root, *root.parents[:1])):
        return FACE_WORLD
    return f"{TRAIN_DATASETS[task]} layout: {root.name}"


def cmd_train(args) -> int:
    model = _start_model(args)
    before = model.trained_on
    model.trained_on = trained_on_label(args.data, args.task)
    if before and before != model.trained_on:
        model.trained_on += f", after {before}"
    common = dict(img_size=args.img_size, batch_size=args.batch_size, crop=args.crop, seed=args.seed,
                  max_seconds=args.max_seconds, checkpoint=args.out,
                  resume=args.out if args.resume else None)
    if args.epochs is not None:
        common["epochs"] = args.epochs[0] if args.task == "attributes" else tuple(args.epochs)
    if args.task == "identity":
        history = train_identity(model, read_vggface2(args.data, "train"), **common)
    elif args.task == "attributes":
        history = train_attributes(model, read_utkface(args.data), **common)
    else:
        train_set = read_affectnet(args.data, "train", num_classes=args.classes)
        val_set = _read_split(read_affectnet, args.data, "val", num_classes=args.classes)
        history = train_emotion(model, train_set, weighted=not args.unweighted, val_set=val_set, **common)
    print(history.to_string(index=False))
    print(f"saved {checkpoint_path(args.out)}")
    return EXIT_OK


def cmd_evaluate(args) -> int:
    model = make_network(args.model, backend=args.backend, freeze=False, image_size=args.img_size)  # resolved once
    kw = dict(batch_size=args.batch_size)
    if args.task == "identity":
        metrics = evaluate_identity(model, read_lfw(args.data), n_splits=args.splits, **kw)
    elif args.task == "attributes":
        metrics = evaluate_attributes(model, read_utkface(args.data), **kw)
    else:
        classes = args.classes or model.head_sizes.get("emotion", 8)
        metrics = evaluate_emotion(model, read_affectnet(args.data, args.split, num_classes=classes), **kw)
    print(metrics_table(metrics).to_string(index=False))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(metrics, f, indent=2, default=_json_default)
    return EXIT_INPUT_FAILED if metrics.get("failed_images") else EXIT_OK


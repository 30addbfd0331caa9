"""The ``facelab`` command.

Each sub-command is a small function ``cmd_<name>(args) -> int`` registered in
:func:`build_parser`.  Exit codes: 0 all inputs processed, 2 some inputs failed
(one line per failure on stderr), 1 usage errors.  User mistakes never print a
traceback: :class:`facelab.errors.FacelabError` is turned into one clear line.
"""
from __future__ import annotations

import argparse
import sys

from facelab.errors import FacelabError

EXIT_OK, EXIT_USAGE, EXIT_INPUT_FAILED = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse exits with 2 on usage errors; facelab reserves 2 for failed inputs."""

    def error(self, message):  # noqa: D401 - argparse API
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def report_failure(name, error) -> None:
    """One line on stderr for one failed input."""
    print(f"facelab: {name}: {error}", file=sys.stderr)


# --- sub-commands -------------------------------------------------------------
# (each section below belongs to one module; keep edits local to a section)


def cmd_tour(args) -> int:
    from facelab.apps.tour import run_tour

    return run_tour(out=args.out)


def add_tour(sub) -> None:
    p = sub.add_parser("tour", help="run the teaching pipeline on the built-in face world")
    p.add_argument("--out", default="build/tour", help="output folder (default: build/tour)")
    p.set_defaults(func=cmd_tour)


# --- detect / prepare (facelab.faces, facelab.data.prepare) -------------------------------------


def _probability(text) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} must lie between 0 and 1")
    return value


def _int_at_least(low):
    def parse(text) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{text} must be >= {low}")
        return value

    return parse


def _error_text(name, exc) -> str:
    """``"ImageTooLarge: image is 30000 x 30000 ..."``: the class name, then the message."""
    return f"{type(exc).__name__}: {_strip_name(name, exc)}"


def _expand_image_args(args_paths):
    """Folders become their images (sorted); yields ``(name, path, error)``."""
    from pathlib import Path

    from facelab.errors import ImageDecodeError
    from facelab.data.io import list_images

    for raw in args_paths:
        path = Path(raw)
        if path.is_dir():
            images = list_images(path)
            if not images:
                yield raw, None, ImageDecodeError(f"{raw}: directory holds no image files (.jpg, .png, ...)")
            for image in images:
                yield str(image), image, None
        else:
            yield raw, path, None


def _detect_loaded(arrays, args):
    """detect_faces on a chunk; if the batch fails, image by image, so one bad image stays one entry."""
    from facelab.faces import detect_faces

    kw = dict(min_face_size=args.min_face_size, threshold=args.threshold)
    try:
        return detect_faces(arrays, **kw, batch_size=args.batch_size)
    except Exception:  # noqa: BLE001 - fall back to isolate the image that breaks the detector
        results = []
        for arr in arrays:
            try:
                results.append(detect_faces(arr, **kw)[0])
            except Exception as exc:  # noqa: BLE001 - reported as that input's error, never a traceback
                results.append(exc)
        return results


def _annotated_path(out_dir, name, used) -> "Path":
    from pathlib import Path

    stem = Path(name).stem or "image"
    candidate, k = f"{stem}.png", 1
    while candidate in used:
        k += 1
        candidate = f"{stem}_{k}.png"
    used.add(candidate)
    return Path(out_dir) / candidate


def cmd_detect(args) -> int:
    import json
    from pathlib import Path

    from facelab.apps.annotate import annotate
    from facelab.data.io import load_image

    entries, failures, used_names = [], 0, set()
    if args.annotate:
        Path(args.annotate).mkdir(parents=True, exist_ok=True)
    if not args.json:
        print(f"{'face':>4} {'prob':>6} {'x1':>7} {'y1':>7} {'x2':>7} {'y2':>7}  path")
    todo = list(_expand_image_args(args.images))
    for start in range(0, len(todo), args.batch_size):
        chunk, loaded = [], []
        for name, path, error in todo[start:start + args.batch_size]:
            entry = {"path": name}
            if error is None:
                try:
                    loaded.append((entry, load_image(path, name=name)))
                except FacelabError as exc:
                    error = exc
            if error is not None:
                entry["error"] = _error_text(name, error)
            chunk.append(entry)
        found = _detect_loaded([arr for _, arr in loaded], args)
        for (entry, arr), faces in zip(loaded, found):
            if isinstance(faces, Exception):
                entry["error"] = f"{type(faces).__name__}: face detection failed ({faces})"
                continue
            entry["faces"] = [face.to_dict() for face in faces]
            if args.annotate:
                target = _annotated_path(args.annotate, entry["path"], used_names)
                try:
                    annotate(arr, faces).save(target)
                except OSError as exc:
                    entry["error"] = f"OSError: cannot write annotated image {target} ({exc})"
                    del entry["faces"]
        for entry in chunk:
            if "error" in entry:
                failures += 1
                report_failure(entry["path"], entry["error"])
            elif not args.json:
                _print_detect_rows(entry)
        entries += chunk
    if args.json:  # one JSON document, one input per line
        print("[\n" + ",\n".join(json.dumps(entry) for entry in entries) + "\n]")
    if args.annotate:
        print(f"annotated images written to {args.annotate}", file=sys.stderr)
    return EXIT_INPUT_FAILED if failures else EXIT_OK


def _print_detect_rows(entry) -> None:
    """One table row per face (path last, so long paths stay readable); ``no face`` rows too."""
    if not entry["faces"]:
        print(f"{'-':>4} {'no face':>38}  {entry['path']}")
    for k, face in enumerate(entry["faces"], start=1):
        x1, y1, x2, y2 = face["box"]
        print(f"{k:>4} {face['prob']:>6.3f} {x1:>7.1f} {y1:>7.1f} {x2:>7.1f} {y2:>7.1f}  {entry['path']}")


def add_detect(sub) -> None:
    p = sub.add_parser(
        "detect", help="find faces (MTCNN) in images and folders of images",
        description="One result per input: its faces (box x1 y1 x2 y2 in pixels, probability, 5 landmarks) "
                    "or its error. Bad inputs never stop the batch; exit code 2 if any input failed.",
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders of images")
    p.add_argument("--json", action="store_true", help="print one JSON document (a list, one object per input)")
    p.add_argument("--annotate", metavar="DIR", help="also write copies with boxes and probabilities drawn")
    p.add_argument("--min-face-size", type=_int_at_least(12), default=20,
                   help="smallest face side in pixels (default 20)")
    p.add_argument("--threshold", type=_probability, default=0.9,
                   help="keep faces with probability >= T (default 0.9)")
    p.add_argument("--batch-size", type=_int_at_least(1), default=32,
                   help="images read and detected together (default 32)")
    p.set_defaults(func=cmd_detect)


def cmd_prepare(args) -> int:
    from pathlib import Path

    from facelab.data.prepare import prepare_dataset

    report = prepare_dataset(
        args.root, args.out, policy=args.policy, size=args.size, margin=args.margin, workers=args.workers,
        progress=not args.quiet, min_face_size=args.min_face_size, threshold=args.threshold,
        retry_failed=args.retry_failed,
    )
    for rel, reason in report.failures:
        report_failure(Path(args.root) / rel, reason)
    print(report.summary())
    return EXIT_INPUT_FAILED if report.failed else EXIT_OK


def add_prepare(sub) -> None:
    p = sub.add_parser(
        "prepare", help="detect and crop a whole image dataset once, in the same folder layout",
        description="Writes the largest face of ROOT/<path> to CROPS/<path> (same names; other files copied), "
                    "lists unreadable images and images without a face in CROPS/failures.csv. Resumable: run "
                    "it again after an interruption. Exit code 2 if any image failed.",
    )
    p.add_argument("root", metavar="ROOT", help="dataset folder")
    p.add_argument("--out", required=True, metavar="CROPS", help="output folder (created)")
    p.add_argument("--policy", choices=("tight", "margin", "center"), default="tight",
                   help="tight = detector box, no margin (paper, default); margin; center = centre crop")
    p.add_argument("--size", type=_int_at_least(1), default=112, help="crop side in pixels (default 112)")
    p.add_argument("--margin", type=float, default=0.2, help="--policy margin: fraction added per side (0.2)")
    p.add_argument("--workers", type=_int_at_least(1), default=None,
                   help="processes (default: 1 below 8 CPU cores, else min(4, cores / 2))")
    p.add_argument("--min-face-size", type=_int_at_least(12), default=20, help="MTCNN: smallest face (20 px)")
    p.add_argument("--threshold", type=_probability, default=0.9, help="MTCNN: keep faces with prob >= T")
    p.add_argument("--retry-failed", action="store_true", help="retry images listed in an earlier failures.csv")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_prepare)


# --- video-features / video-classify (facelab.inference.video, facelab.inference.pooling) ---------------


def cmd_video_features(args) -> int:
    from pathlib import Path

    import numpy as np

    from facelab.checkpoints import load_checkpoint
    from facelab.data.datasets import read_afew, read_vgaf
    from facelab.inference.video import ClipFailure, FeatureSet, extract_clip_features, save_feature_set

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


def add_video_features(sub) -> None:
    p = sub.add_parser("video-features", help="per-frame face features of AFEW-/VGAF-like clips -> one .npz")
    p.add_argument("root", help="dataset folder: AFEW layout (Train/<Emotion>/clip.avi) or VGAF (Train/ + Train_labels.txt)")
    p.add_argument("--model", required=True, help="emotion network checkpoint (.safetensors)")
    p.add_argument("--out", required=True, help="output .npz (features, labels, split, clip names)")
    p.add_argument("--format", choices=["auto", "afew", "vgaf"], default="auto",
                   help="dataset layout (default: vgaf if ROOT has *_labels.txt, else afew)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--group", dest="group", action="store_const", const=True, default=None,
                      help="keep all faces per frame (default for VGAF)")
    mode.add_argument("--single", dest="group", action="store_const", const=False,
                      help="keep the largest face per frame (default for AFEW)")
    sampling = p.add_mutually_exclusive_group()
    sampling.add_argument("--every", type=_int_at_least(1), default=1, help="keep every K-th frame (default 1)")
    sampling.add_argument("--fps", type=float, default=None, help="or: sample this many frames per second")
    p.add_argument("--splits", default="train,val", help="comma-separated splits to read (default train,val)")
    p.add_argument("--batch-frames", type=_int_at_least(1), default=16, help="frames detected together (default 16)")
    p.add_argument("--cache-dir", default=None,
                   help="per-clip feature cache (default: $FACELAB_CACHE/video_features or data/cache/video_features)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the per-clip cache")
    p.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                   help="network precision (auto: bf16 on CPUs with native bfloat16)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_video_features)


def confusion_table(y_true, y_pred, classes) -> str:
    """A confusion matrix as a text table: rows = true class, columns = predicted class."""
    from sklearn.metrics import confusion_matrix

    cm = confusion_matrix(y_true, y_pred, labels=list(range(len(classes))))
    width = max(6, *(len(c) for c in classes)) + 1
    lines = ["true \\ predicted".ljust(width) + "".join(c[:width - 1].rjust(width) for c in classes)]
    for name, row in zip(classes, cm):
        lines.append(name.ljust(width) + "".join(str(v).rjust(width) for v in row))
    return "\n".join(lines)


def cmd_video_classify(args) -> int:
    import numpy as np

    from facelab.errors import InvalidInputError
    from facelab.inference.pooling import FRAME_STATS, compare_video_descriptors, make_video_classifier
    from facelab.inference.video import load_feature_set

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


def add_video_classify(sub) -> None:
    p = sub.add_parser("video-classify", help="train a clip classifier on Train, report accuracy on Val")
    p.add_argument("features", help=".npz written by `facelab video-features`")
    p.add_argument("--classifier", choices=["svc", "rf"], default="svc",
                   help="svc = LinearSVC, rf = RandomForest (--trees, default 1000)")
    p.add_argument("--trees", type=_int_at_least(1), default=1000, help="RandomForest trees (default 1000)")
    p.add_argument("--stats", default=None,
                   help="single-person statistics, comma-separated (default mean,max,min,std; also: middle)")
    p.add_argument("--train-split", default="train")
    p.add_argument("--test-split", default="val")
    p.add_argument("--compare", action="store_true",
                   help="also compare middle frame / mean pooling / the paper's descriptor")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_video_classify)


# --- train / evaluate (facelab.training.train, facelab.training.evaluate) ----------------------------------
TRAIN_TASKS = ("identity", "attributes", "emotion")
#: The dataset layout each training task reads (`facelab train TASK --data ROOT`).
TRAIN_DATASETS = {"identity": "VGGFace2", "attributes": "UTKFace", "emotion": "AffectNet"}


def _start_model(args):
    """The model a `facelab train` run starts from: --init CKPT, or a fresh --backbone."""
    from facelab.checkpoints import load_checkpoint
    from facelab.models import MultiTaskNet

    if args.init:
        return load_checkpoint(args.init)
    if args.task != "identity":
        print(f"facelab: note: training {args.task} from a fresh {args.backbone} (no --init identity checkpoint)",
              file=sys.stderr)
    return MultiTaskNet(args.backbone, pretrained=args.pretrained)


def _read_split(reader, root, split, **kw):
    """The reader's dataset for `split`, or None when the dataset has no such split."""
    from facelab.errors import DatasetFormatError

    try:
        return reader(root, split, **kw)
    except DatasetFormatError:
        return None


def trained_on_label(root, task: str) -> str:
    """``trained_on`` of a network trained on dataset folder ``root``: the face world when the
    folder was written by ``facelab synth`` (it holds the face world's meta file), else the
    layout's dataset name and the folder's name."""
    from pathlib import Path

    from facelab.labels import FACE_WORLD
    from facelab.synth.writers import META_FILE

    root = Path(root)
    if any((folder / META_FILE).is_file() for folder in (root, *root.parents[:1])):
        return FACE_WORLD
    return f"{TRAIN_DATASETS[task]} layout: {root.name}"


def cmd_train(args) -> int:
    from facelab.data.datasets import read_affectnet, read_utkface, read_vggface2
    from facelab.training.train import train_attributes, train_emotion, train_identity

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
    from facelab.checkpoints import checkpoint_path

    print(f"saved {checkpoint_path(args.out)}")
    return EXIT_OK


def add_train(sub) -> None:
    p = sub.add_parser("train", help="train identity / attribute / emotion heads in the paper's stages")
    p.add_argument("task", choices=TRAIN_TASKS)
    p.add_argument("--data", required=True, help="dataset root (VGGFace2 / UTKFace / AffectNet layout)")
    p.add_argument("--out", required=True, help="checkpoint to write: OUT.safetensors (+ OUT.json, OUT.state.pt)")
    p.add_argument("--init", help="start from this checkpoint (e.g. the identity model for attributes/emotion)")
    p.add_argument("--backbone", default="mobilenetv1_100", help="timm model name (default: mobilenetv1_100)")
    p.add_argument("--pretrained", action="store_true", help="start from timm's ImageNet weights (downloads once)")
    p.add_argument("--img-size", type=int, help="input size in pixels (default: the backbone's)")
    p.add_argument("--epochs", type=int, nargs="+", metavar="N",
                   help="epochs of stage A and stage B (attributes: one number)")
    p.add_argument("--crop", choices=("tight", "center"), default="tight",
                   help="how the faces were cropped (recorded in the checkpoint)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--classes", type=int, choices=(8, 7), default=8, help="emotion classes (default 8)")
    p.add_argument("--unweighted", action="store_true", help="emotion: plain cross-entropy instead of eq. (2)")
    p.add_argument("--max-seconds", type=float, help="stop after this many seconds (whole run)")
    p.add_argument("--resume", action="store_true", help="continue from OUT.state.pt")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_train)


def cmd_evaluate(args) -> int:
    from facelab.checkpoints import load_checkpoint
    from facelab.data.datasets import read_affectnet, read_lfw, read_utkface
    from facelab.training.evaluate import evaluate_attributes, evaluate_emotion, evaluate_identity, metrics_table

    model = load_checkpoint(args.model)
    kw = dict(img_size=args.img_size, batch_size=args.batch_size)
    if args.task == "identity":
        metrics = evaluate_identity(model, read_lfw(args.data), n_splits=args.splits, **kw)
    elif args.task == "attributes":
        metrics = evaluate_attributes(model, read_utkface(args.data), **kw)
    else:
        classes = args.classes or model.head_sizes.get("emotion", 8)
        metrics = evaluate_emotion(model, read_affectnet(args.data, args.split, num_classes=classes), **kw)
    print(metrics_table(metrics).to_string(index=False))
    if args.json:
        import json

        from facelab.checkpoints import _json_default

        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(metrics, f, indent=2, default=_json_default)
    return EXIT_INPUT_FAILED if metrics.get("failed_images") else EXIT_OK


def add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="metrics of a checkpoint: LFW protocol / attributes / emotions")
    p.add_argument("task", choices=TRAIN_TASKS)
    p.add_argument("--data", required=True, help="dataset root (LFW / UTKFace / AffectNet layout)")
    p.add_argument("--model", required=True, help="facelab checkpoint (.safetensors)")
    p.add_argument("--split", default="val", help="AffectNet split to evaluate (default: val)")
    p.add_argument("--classes", type=int, choices=(8, 7), help="emotion classes of the data (default: the model's)")
    p.add_argument("--splits", type=int, default=10, help="LFW protocol: number of random splits (default 10)")
    p.add_argument("--img-size", type=int, help="input size (default: the checkpoint's)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--json", help="also write all metrics (confusion matrices included) to this JSON file")
    p.set_defaults(func=cmd_evaluate)


# --- predict / export-onnx (facelab.inference.analyze, facelab.inference.onnx_export) --------------------------


def _strip_name(name, error) -> str:
    """Error messages already start with the input's name; do not print it twice."""
    error = str(error)
    return error[len(f"{name}: "):] if error.startswith(f"{name}: ") else error


def _detect_size(text) -> int:
    """``--detect-size``: 0 (full resolution) or a working size of at least 12 pixels."""
    value = _int_at_least(0)(text)
    if 0 < value < 12:
        raise argparse.ArgumentTypeError(f"{text} must be 0 (full resolution) or >= 12 pixels")
    return value


def cmd_predict(args) -> int:
    from facelab.apps.annotate import write_annotated
    from facelab.inference.analyze import FaceAnalyzer

    analyzer = FaceAnalyzer(
        args.model, args.emotion_model, device=args.device, precision=args.precision, backend=args.backend,
        batch_size=args.batch_size, min_face_size=args.min_face_size, threshold=args.threshold,
    )
    if analyzer.face_world_heads:
        print(f"facelab: note: {', '.join(analyzer.face_world_heads)} come from networks trained on drawn faces "
              "(the face world); on real photos these predictions are not meaningful. For real faces use the "
              "paper's networks, e.g. --emotion-model enet_b0_8_best_afew (facelab download --list)",
              file=sys.stderr)
    df = analyzer.analyze_paths(args.paths, every=args.every, detect_size=args.detect_size or None,
                                detect_every=args.detect_every, appearance=args.appearance,
                                per_track=args.per_track)
    try:
        if args.json is not None:
            text = df.to_json(orient="records", indent=1)
            if args.json == "-":
                print(text)
            else:
                with open(args.json, "w", encoding="utf-8") as f:
                    f.write(text + "\n")
        elif args.csv is not None and args.csv != "-":
            df.to_csv(args.csv, index=False)
        else:
            df.to_csv(sys.stdout, index=False)
        if args.annotate:
            write_annotated(df[df["track"].isna()] if args.per_track else df, args.annotate)
    except OSError as exc:
        print(f"facelab: error: cannot write the results ({exc})", file=sys.stderr)
        return EXIT_INPUT_FAILED
    failed = df[df["status"] == "failed"]
    for _, row in failed.iterrows():
        report_failure(row["name"], _strip_name(row["name"], row["error"]))
    if (args.json not in (None, "-")) or (args.csv not in (None, "-")):
        n_inputs = df["input"].nunique()
        ok = df["status"] == "ok"
        faces = (f"{int(df['track'].notna().sum())} face tracks, {int((ok & df['track'].isna()).sum())} faces in "
                 "images" if args.per_track else f"{int(ok.sum())} faces")
        print(f"{n_inputs} inputs: {faces}, "
              f"{int((df['status'] == 'no face').sum())} without a face, {len(failed)} failed "
              f"-> {args.json if args.json is not None else args.csv}")
    return EXIT_INPUT_FAILED if len(failed) else EXIT_OK


def add_predict(sub) -> None:
    p = sub.add_parser(
        "predict", help="emotion / age / gender / race of every face in images, folders and videos",
        description="One row per face (per frame for videos); an input without a face or that fails to load "
                    "still gets one row, with its status. Exit code 2 if any input failed.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders of images, video files")
    p.add_argument("--model", required=True,
                   help="checkpoint (.safetensors; .onnx with --backend onnx) or a model-zoo name such as "
                        "enet_b0_8_va_mtl (facelab download --list)")
    p.add_argument("--emotion-model",
                   help="emotion checkpoint or zoo name (its emotion, valence and arousal heads win over --model's)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--csv", metavar="OUT", help="write CSV to OUT (default: CSV on stdout)")
    out.add_argument("--json", nargs="?", const="-", metavar="OUT",
                     help="JSON records instead of CSV (to OUT, or stdout)")
    p.add_argument("--annotate", metavar="DIR", help="also save the images with boxes and labels drawn into DIR")
    p.add_argument("--batch-size", type=int, default=32, help="faces per CNN batch (default 32)")
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                   help="auto = bf16 on CPUs with AMX/AVX512-BF16 (default)")
    p.add_argument("--backend", choices=("torch", "onnx"), default="torch")
    p.add_argument("--device", default="cpu")
    p.add_argument("--every", type=int, default=1, help="videos: analyse every k-th frame (default 1)")
    p.add_argument("--detect-size", type=_detect_size, default=640, metavar="PX",
                   help="videos: run the face detector on frames shrunk to this longer side (default 640; "
                        "0: full resolution); boxes are mapped back and crops cut from the full frame. The "
                        "smallest face searched is max(--min-face-size, 12 x the frame's longer side / PX) pixels")
    p.add_argument("--detect-every", type=_int_at_least(1), default=1, metavar="K",
                   help="videos: run the detector on every K-th analysed frame and carry the face tracks "
                        "in between (default 1: every frame; 3-5 is several times faster)")
    p.add_argument("--appearance", choices=("color", "features", "features+color"), default="color",
                   help="videos: what the tracker compares besides the boxes: a colour histogram of the face "
                        "(default), the network's own features (an emotion network's change with the "
                        "expression), or both")
    p.add_argument("--per-track", action="store_true",
                   help="videos: one row per face track (first/last frame, frames seen, mean emotion "
                        "probabilities and their argmax, mean valence/arousal/age, majority gender) "
                        "instead of one row per face and frame")
    p.add_argument("--min-face-size", type=int, default=20, help="MTCNN: smallest face in pixels (default 20)")
    p.add_argument("--threshold", type=float, default=0.9, help="MTCNN: keep faces above this probability")
    p.set_defaults(func=cmd_predict)


def cmd_export_onnx(args) -> int:
    from facelab.inference.onnx_export import export_onnx

    path = export_onnx(args.checkpoint, args.out, img_size=args.img_size, opset=args.opset)
    print(f"wrote {path}: input 'image' (N x 3 x S x S, RGB in [0, 255]), one output per head + 'features'")
    return EXIT_OK


def add_export_onnx(sub) -> None:
    p = sub.add_parser("export-onnx", help="export a checkpoint to ONNX (needs the onnx extra)")
    p.add_argument("checkpoint", metavar="CKPT", help="facelab checkpoint (.safetensors)")
    p.add_argument("out", metavar="OUT.onnx")
    p.add_argument("--img-size", type=int, help="crop side baked into the graph (default: the checkpoint's)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 17, default 17)")
    p.set_defaults(func=cmd_export_onnx)


def cmd_synth(args) -> int:
    """Write a dataset of the built-in face world in a real dataset's format, or a preview sheet."""
    import json

    if args.preview:
        from facelab.synth.preview import save_preview

        path = save_preview(args.preview)
        print(f"wrote {path or args.preview}")
        if args.name is None:
            return EXIT_OK
    if args.name is None or args.root is None:
        print("facelab synth: error: give a dataset name and ROOT (or --preview OUT.png)", file=sys.stderr)
        return EXIT_USAGE
    from facelab.synth.writers import generate

    summary = generate(args.name, args.root, n=args.n, seed=args.seed, size=args.size, workers=args.workers,
                       progress=not args.no_progress)
    print(json.dumps(summary))
    return EXIT_OK


def add_synth(sub) -> None:
    from facelab.synth.writers import DATASETS

    p = sub.add_parser("synth", help="write a synthetic face dataset in a real dataset's on-disk format")
    p.add_argument("name", nargs="?", choices=DATASETS, metavar="DATASET",
                   help="one of " + ", ".join(DATASETS))
    p.add_argument("root", nargs="?", metavar="ROOT", help="output folder")
    p.add_argument("--n", type=int, help="main count: people (vggface2, lfw), images (utkface, affectnet "
                                         "train, scenes) or training clips (afew, vgaf)")
    p.add_argument("--seed", type=int, default=0, help="world seed (same seed -> byte-identical files)")
    p.add_argument("--size", type=int, help="image side / video frame height in pixels")
    p.add_argument("--workers", type=int, help="worker processes (default: all CPUs, at most 8)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--preview", metavar="OUT.png", help="draw a contact sheet (rows: emotions; "
                                                          "columns: people and ages)")
    p.set_defaults(func=cmd_synth)


# --- download (facelab.zoo) -----------------------------------------------------------


def _zoo_row(entry) -> str:
    """One `--list` row: name, tasks, architecture, size, whether the file is here, why unsupported."""
    from facelab import zoo

    size = f"{entry.size / 1e6:.1f} MB" if entry.size else "?"
    here = "cached" if zoo.local_path(entry).is_file() else "-"
    row = f"{entry.name:<26} {'+'.join(entry.tasks):<24} {entry.architecture:<38} {size:>9}  {here}"
    return row if entry.supported else f"{row}  unsupported: {entry.reason}"


def _prepare_zoo_model(entry, args):
    """Download one zoo model and convert it once into a facelab checkpoint (unless
    ``--no-convert`` or facelab cannot load it); returns the file to load."""
    from facelab import zoo
    from facelab.checkpoints import zoo_checkpoint, zoo_checkpoint_path

    path = zoo.download(entry, progress=not args.no_progress, force=args.force)
    if args.no_convert or not entry.supported or entry.architecture.startswith("facenet_pytorch"):
        return path
    if args.force:
        zoo_checkpoint_path(entry.name).unlink(missing_ok=True)
    return zoo_checkpoint(entry.name, progress=not args.no_progress)


def cmd_download(args) -> int:
    from facelab import zoo

    if args.list:
        print(f"{'name':<26} {'tasks':<24} {'architecture':<38} {'size':>9}  local")
        for entry in zoo.list_models():
            print(_zoo_row(entry))
        if not (args.names or args.all):
            return EXIT_OK
    unknown = [name for name in args.names if name not in zoo.MODELS]
    if args.all == bool(args.names) or unknown:
        problem = (f"unknown model {', '.join(map(repr, unknown))}; known: {', '.join(zoo.MODELS)}" if unknown
                   else "give model NAMEs or --all (--list shows them)")
        print(f"facelab download: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    entries = zoo.list_models() if args.all else [zoo.get(name) for name in dict.fromkeys(args.names)]
    failures = 0
    for entry in entries:
        if args.all and not entry.supported:
            print(f"skipped {entry.name}: unsupported: {entry.reason}", file=sys.stderr)
            continue
        try:
            path = _prepare_zoo_model(entry, args)
        except FacelabError as exc:
            failures += 1
            report_failure(entry.name, _strip_name(entry.name, exc))
            continue
        print(f"{entry.name}: {path}")
        if not entry.supported:
            print(f"facelab: note: {entry.name} is downloaded, but facelab cannot load it: {entry.reason}",
                  file=sys.stderr)
    return EXIT_INPUT_FAILED if failures else EXIT_OK


def add_download(sub) -> None:
    p = sub.add_parser(
        "download", help="download the paper's published networks (model zoo) and check their sha256",
        description="Files go to $FACELAB_HOME/zoo/downloads (default ~/.cache/facelab). FACELAB_ZOO_MIRROR "
                    "(a folder or an http(s) URL) replaces their origin. Exit code 2 if any download failed.",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="zoo models to download (see --list)")
    p.add_argument("--all", action="store_true", help="every model facelab can load (others are skipped)")
    p.add_argument("--list", action="store_true", help="list the models: tasks, architecture, size, cached")
    p.add_argument("--force", action="store_true", help="download again even when a checked copy is there")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-convert", action="store_true",
                   help="only download; the conversion into a facelab checkpoint then happens on first load")
    p.set_defaults(func=cmd_download)


# --- parser -------------------------------------------------------------------
ADDERS = [add_tour, add_synth, add_detect, add_prepare, add_train, add_evaluate, add_predict, add_export_onnx,
          add_video_features, add_video_classify, add_download]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="facelab", description="facelab: face detection, multi-task training, prediction and video descriptors (images are RGB).")
    from facelab import __version__

    parser.add_argument("--version", action="version", version=f"facelab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for add in ADDERS:
        add(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except FacelabError as exc:
        print(f"facelab: error: {exc}", file=sys.stderr)
        return EXIT_INPUT_FAILED
    except KeyboardInterrupt:
        print("facelab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

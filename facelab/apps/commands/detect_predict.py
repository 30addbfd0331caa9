"""``facelab detect``, ``facelab predict`` and ``facelab export-onnx``: faces in photos and
videos, what the network of Fig. 1 says about them, and the network as an ONNX graph."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from facelab.apps.annotate import annotate, write_annotated
from facelab.apps.commands import EXIT_INPUT_FAILED, EXIT_OK, report_failure, strip_name
from facelab.data.io import list_images, load_image
from facelab.errors import FacelabError, ImageDecodeError
from facelab.faces import detect_faces
from facelab.inference.analyze import FaceAnalyzer
from facelab.inference.onnx_export import export_onnx


def _error_text(name, exc) -> str:
    """``"ImageTooLarge: image is 30000 x 30000 ..."``: the class name, then the message."""
    return f"{type(exc).__name__}: {strip_name(name, exc)}"


def _expand_image_args(args_paths):
    """Folders become their images (sorted); yields ``(name, path, error)``."""
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


def _annotated_path(out_dir, name, used) -> Path:
    stem = Path(name).stem or "image"
    candidate, k = f"{stem}.png", 1
    while candidate in used:
        k += 1
        candidate = f"{stem}_{k}.png"
    used.add(candidate)
    return Path(out_dir) / candidate


def cmd_detect(args) -> int:
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


def cmd_predict(args) -> int:
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
        report_failure(row["name"], strip_name(row["name"], row["error"]))
    if (args.json not in (None, "-")) or (args.csv not in (None, "-")):
        n_inputs = df["input"].nunique()
        ok = df["status"] == "ok"
        faces = (f"{int(df['track'].notna().sum())} face tracks, {int((ok & df['track'].isna()).sum())} faces in "
                 "images" if args.per_track else f"{int(ok.sum())} faces")
        print(f"{n_inputs} inputs: {faces}, "
              f"{int((df['status'] == 'no face').sum())} without a face, {len(failed)} failed "
              f"-> {args.json if args.json is not None else args.csv}")
    return EXIT_INPUT_FAILED if len(failed) else EXIT_OK


def cmd_export_onnx(args) -> int:
    path = export_onnx(args.checkpoint, args.out, img_size=args.img_size, opset=args.opset)
    print(f"wrote {path}: input 'image' (N x 3 x S x S, RGB in [0, 255]), one output per head + 'features'")
    return EXIT_OK


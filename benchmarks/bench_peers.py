"""facelab against EmotiEffLib (the paper author's own library): same network, same faces, one run.

Plain script (stdlib timing, medians over repeats, every ratio measured side by side)::

    .venv/bin/python benchmarks/bench_peers.py [--json OUT.json] [--faces 500] [--photos 200] [--frames 20]
    .venv/bin/python benchmarks/bench_peers.py --quick --json OUT.json     # tiny sizes, no timing claims

**The peer.**  EmotiEffLib 1.1.1 from the package index, installed by this script with
``pip install --no-deps --target build/peers/site emotiefflib==1.1.1 opencv-python-headless``
(its ``torch`` extra pins timm 0.9; its other requirements -- numpy, onnx, onnxruntime,
pillow -- are facelab's too, and opencv is the one it adds).  That folder goes at the *end*
of ``sys.path`` of this process only, so the peer runs on the same torch, timm and
onnxruntime as facelab, and ``.venv`` is not changed.  A later run reuses the folder.
Without the package index and without that folder the script exits with code 77 (skip).

**The network.**  ``tf_efficientnet_b0`` (timm, random weights, seed 0) with the publisher's
head ``classifier = nn.Sequential(nn.Linear(1280, 8))``, saved the way the publisher saves
its files (``torch.save(model)`` and ``torch.onnx.export(..., opset_version=11,
input_names=["input"])``, as its ``convert_pt_to_onnx.py``) to
``$HOME/.emotiefflib/enet_b0_8_best_vgaf.pt`` / ``.onnx`` in a temporary ``HOME``, where
EmotiEffLib looks before it downloads anything (downloads are also blocked in this process).
facelab reads the same ``.pt`` through its own safe path,
``facelab.checkpoints.import_hsemotion`` (the pickle is never run).

The classifier is fitted, not random: a random linear layer on a random backbone gives nearly
the same logits for every face (every face gets one class, and "the classes agree" would say
nothing).  It is a logistic regression on the top ``PCS`` whitened principal components of the
backbone's features over calibration faces (other faces than the measured ones), trained on
their true emotions, so its classes spread over the faces as a trained network's do.  The
backbone keeps timm's initialisation: re-estimating its BatchNorm statistics on faces makes
a random EfficientNet so sensitive that rounding the resized image to whole grey levels (as
EmotiEffLib's PIL and OpenCV resizes do) changes 1-2% of its answers.  Speed does not depend
on the weights.

**What is compared** (the same ``--faces`` face-world crops of ``--crop-size`` px, uint8 RGB,
given to every method):

* EmotiEffLib ``EmotiEffLibRecognizerTorch`` / ``EmotiEffLibRecognizerOnnx``,
  ``predict_emotions(face, logits=False)`` one face per call, and with lists of
  ``--list-size`` faces (a list of all faces would keep the autograd graph of every face:
  the Torch recognizer does not turn gradients off); also the Torch lists under
  ``torch.inference_mode()``, which a user could add (not in the publisher's examples);
* facelab ``FaceAnalyzer(...).predict_crops(crops)``: default precision (bf16 on CPUs with
  AVX512-BF16 / AMX), ``precision="fp32"``, ``backend="onnx"``.

faces/s (median of ``--repeats`` round-robin repeats after a warm-up) and the ratio to
EmotiEffLib's fastest way; then agreement with EmotiEffLib's reference (Torch, one face per
call: fp32, the publisher's own path): the fraction of faces with the same class, the
largest probability difference, and the class agreement on the faces the reference decides
clearly (top-two probabilities further apart than the tolerance).

**End to end on photos**: the publisher's example pipeline -- facenet-pytorch ``MTCNN``
(``min_face_size=40, post_process=False``) on each photo at full resolution, boxes with
probability > 0.9, ``frame[y1:y2, x1:x2]`` crops, ``predict_emotions(crops)`` per photo with
EmotiEffLib's fastest recognizer -- against ``FaceAnalyzer(min_face_size=40).analyze(photos)``.

**Detection alone**: facenet-pytorch MTCNN on full 1080p frames against facelab's
``detect_faces(frames, detect_size=640)`` (MTCNN at a working resolution); recall of the
rendered faces >= 40 px tall (IoU >= 0.5), false detections, frames/s.

The machine (CPU model, AVX512-BF16 / AMX flags, cores, versions) and the CPU time other
processes took during the run are printed with the figures; ``--json`` writes all of them.
``--threads N`` sets torch's threads and those of every ONNX Runtime session (EmotiEffLib's
and facelab's) alike.  On cores shared with other jobs use ``--threads 1``: two OpenMP threads
then wait on each other at every small operator, and the one-face-at-a-time calls collapse
(an eager batch of one took 2.4 s instead of 33 ms).  ``--quick`` always runs one thread.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common import CpuMeter, load_average, machine, module_versions, rate_stats, timed_rounds, write_json  # noqa: E402

PEER = "emotiefflib"
PEER_VERSION = "1.1.1"
#: What pip installs next to it (--no-deps): the one requirement facelab does not have.
PEER_EXTRAS = ("opencv-python-headless",)
MODEL_NAME = "enet_b0_8_best_vgaf"  # a name EmotiEffLib knows: B0, 224 px, 8 emotions
ARCH = "tf_efficientnet_b0"
SIZE = 224
PCS = 16                   # principal components the fitted classifier reads
EXIT_SKIP = 77             # the peer cannot be installed here (no package index, no cached copy)
#: Probability tolerances against EmotiEffLib's reference (Torch, fp32).  fp32 against fp32:
#: the same arithmetic up to summation order, but EmotiEffLib rounds the resized face to whole
#: grey levels (PIL in its Torch path, OpenCV in its ONNX path) where facelab resizes in float;
#: on this network that moves probabilities by up to ~0.017 (EmotiEffLib's own two engines
#: differ that much), so 0.03.
FP32_TOL = 0.03
#: bf16 keeps 8 significant bits (relative step 2**-8), and every one of EfficientNet-B0's ~80
#: layers stores its output rounded: the features move by 1-2% of their spread (facelab's freeze
#: check accepts up to 5% of their range), which the classifier turns into probability shifts
#: of up to ~0.07 on 500 faces; so 0.1.  A face whose two best classes are closer than the
#: tolerance ("undecided") may swap them; class agreement is also reported on the other faces.
BF16_TOL = 0.1
IOU_MATCH = 0.5


def shown(path: Path) -> str:
    """A path as the JSON shows it: relative to the repository when inside it (no machine's folders)."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


# --- the peer: install, import, keep it offline ----------------------------------------------------
class PeerUnavailable(RuntimeError):
    pass


def _peer_ready(site: Path) -> bool:
    init = site / PEER / "__init__.py"
    return init.is_file() and f'"{PEER_VERSION}"' in init.read_text() and (site / "cv2").is_dir()


def ensure_peer(peer_dir: Path, install: bool = True) -> Path:
    """``peer_dir/site`` holding emotiefflib (and OpenCV); installed with pip when missing."""
    site = peer_dir / "site"
    if _peer_ready(site):
        return site
    if not install:
        raise PeerUnavailable(f"{PEER} {PEER_VERSION} is not installed in {site} and --no-install was given")
    peer_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="site-", dir=peer_dir))
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-input", "--disable-pip-version-check",
           "--target", str(staging), f"{PEER}=={PEER_VERSION}", *PEER_EXTRAS]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise PeerUnavailable(f"pip could not run ({exc})") from exc
    if proc.returncode != 0 or not _peer_ready(staging):
        shutil.rmtree(staging, ignore_errors=True)
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise PeerUnavailable(f"pip install {PEER}=={PEER_VERSION} failed (no package index?): {' | '.join(tail)}")
    if site.exists():
        shutil.rmtree(site)
    staging.rename(site)  # complete or absent: a broken install is never reused
    return site


@contextlib.contextmanager
def ort_threads(threads: int | None):
    """ONNX Runtime sessions made inside the block use ``threads`` intra-op threads (EmotiEffLib
    and facelab build theirs with ONNX Runtime's default: one per core), like torch's threads."""
    import onnxruntime

    original = onnxruntime.InferenceSession
    if not threads:
        yield
        return

    def session(model, sess_options=None, *args, **kwargs):
        options = sess_options or onnxruntime.SessionOptions()
        if not options.intra_op_num_threads:
            options.intra_op_num_threads = threads
        return original(model, options, *args, **kwargs)

    onnxruntime.InferenceSession = session
    try:
        yield
    finally:
        onnxruntime.InferenceSession = original


@contextlib.contextmanager
def offline_peer_home(home: Path):
    """``HOME`` -> ``home`` (EmotiEffLib reads ``~/.emotiefflib``) and every urlretrieve blocked."""
    import urllib.request

    def refuse(url, *args, **kwargs):
        raise RuntimeError(f"bench_peers: blocked a download of {url} (the model files must be in place)")

    old_home, old_retrieve = os.environ.get("HOME"), urllib.request.urlretrieve
    os.environ["HOME"] = str(home)
    urllib.request.urlretrieve = refuse
    try:
        yield
    finally:
        urllib.request.urlretrieve = old_retrieve
        if old_home is None:
            os.environ.pop("HOME", None)
        else:
            os.environ["HOME"] = old_home


# --- the network ------------------------------------------------------------------------------------
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _normalised(crops_u8):
    """uint8 N x 3 x S x S -> 224 px (bilinear, antialiased), ImageNet-normalised float."""
    import torch
    import torch.nn.functional as F

    x = F.interpolate(crops_u8.float(), size=(SIZE, SIZE), mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x / 255 - mean) / std


def make_network(calibration, labels, pcs: int = PCS, seed: int = 0):
    """``tf_efficientnet_b0`` (random, seed) + ``Sequential(Linear(1280, 8))`` fitted to ``labels``
    of the ``calibration`` crops on the top ``pcs`` whitened principal components."""
    import timm
    import torch
    from sklearn.linear_model import LogisticRegression

    torch.manual_seed(seed)
    model = timm.create_model(ARCH, pretrained=False).eval()
    model.classifier = torch.nn.Identity()
    with torch.inference_mode():
        feats = torch.cat([model(_normalised(calibration[s:s + 32])) for s in range(0, len(calibration), 32)])
    f = feats.double().numpy()
    mean = f.mean(0)
    _, s, vt = np.linalg.svd(f - mean, full_matrices=False)
    k = min(pcs, len(f) - 1)
    proj = vt[:k] / (s[:k, None] / np.sqrt(len(f) - 1))           # whitened components
    clf = LogisticRegression(C=1.0, max_iter=5000).fit((f - mean) @ proj.T, labels)
    weight = np.zeros((8, proj.shape[1]))
    bias = np.full(8, -1e3)                                         # a class absent from the calibration set
    weight[clf.classes_] = clf.coef_ @ proj
    bias[clf.classes_] = clf.intercept_ - weight[clf.classes_] @ mean
    head = torch.nn.Linear(feats.shape[1], 8)
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(weight))
        head.bias.copy_(torch.from_numpy(bias))
    model.classifier = torch.nn.Sequential(head)
    return model.eval()


def write_publisher_files(model, folder: Path) -> tuple[Path, Path]:
    """``folder/MODEL_NAME.pt`` (``torch.save(model)``) and ``.onnx`` as the publisher makes them."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    pt, onnx_path = folder / f"{MODEL_NAME}.pt", folder / f"{MODEL_NAME}.onnx"
    torch.save(model, pt)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, torch.randn(1, 3, SIZE, SIZE), str(onnx_path), dynamo=False, opset_version=11,
                          do_constant_folding=True, export_params=True, input_names=["input"],
                          output_names=["output"], dynamic_axes={"input": {0: "batch_size"}, "output": {0: "batch_size"}})
    return pt, onnx_path


# --- data ---------------------------------------------------------------------------------------------
def face_crops(n: int, size: int, seed: int):
    """``n`` face-world tight crops (uint8 N x 3 x size x size) and their true emotions."""
    from facelab.apps.demo import face_world_faces

    ft = face_world_faces(n, image_size=size, seed=seed)
    return ft.images, np.asarray(ft.labels["emotion"])


def photos(n: int, width: int, height: int, seed: int = 3):
    """``n`` face-world scenes with 1-3 faces of 48-200 px (boxes known)."""
    from facelab.synth import render_scene

    return [render_scene(np.random.default_rng([seed, i]), n_faces=1 + i % 3, width=width, height=height,
                         face_px=(48, min(200, height // 2)), seed_people=seed + i) for i in range(n)]


def hd_frames(n: int, seed: int = 7, width: int = 1920, height: int = 1080):
    """``n`` 1080p face-world scenes with 6 faces of 40-240 px (boxes known)."""
    from facelab.synth import render_scene

    return [render_scene(np.random.default_rng([seed, i]), n_faces=6, width=width, height=height,
                         face_px=(40, 240), seed_people=seed + i) for i in range(n)]


# --- comparison ----------------------------------------------------------------------------------------
def agreement(ref: np.ndarray, got: np.ndarray, tol: float) -> dict:
    """Class agreement and probability differences of ``got`` against ``ref`` (N x C)."""
    ref, got = np.asarray(ref, np.float64), np.asarray(got, np.float64)
    same = ref.argmax(1) == got.argmax(1)
    top2 = np.sort(ref, 1)[:, -2:]
    decided = (top2[:, 1] - top2[:, 0]) > tol
    diff = np.abs(ref - got).max(1)
    return {"faces": int(len(ref)), "class_agreement": float(same.mean()),
            "disagreeing_faces": int((~same).sum()),
            "max_abs_prob_diff": float(diff.max()), "p99_abs_prob_diff": float(np.quantile(diff, 0.99)),
            "tolerance": tol, "within_tolerance": float((diff <= tol).mean()),
            "decided_faces": int(decided.sum()),
            "class_agreement_decided": float(same[decided].mean()) if decided.any() else 1.0,
            "largest_ref_margin_among_disagreeing": float((top2[:, 1] - top2[:, 0])[~same].max()) if (~same).any() else 0.0}


# --- part 1: recognizers on the same crops --------------------------------------------------------------
LABELS = {
    "eel_torch_one": "EmotiEffLib Torch, one face per call",
    "eel_torch_list": "EmotiEffLib Torch, lists of {L}",
    "eel_torch_list_nograd": "EmotiEffLib Torch, lists of {L}, inference_mode",
    "eel_onnx_one": "EmotiEffLib ONNX, one face per call",
    "eel_onnx_list": "EmotiEffLib ONNX, lists of {L}",
    "facelab_default": "facelab predict_crops, default ({P})",
    "facelab_fp32": "facelab predict_crops, fp32",
    "facelab_onnx": "facelab predict_crops, ONNX Runtime",
}
REFERENCE = "eel_torch_one"


def bench_crops(recognizers: dict, analyzers: dict, crops_u8, args) -> dict:
    import torch

    crops_np = [np.ascontiguousarray(c.permute(1, 2, 0).numpy()) for c in crops_u8]
    L = args.list_size

    def one(rec, faces):
        return np.concatenate([rec.predict_emotions(face, logits=False)[1] for face in faces])

    def lists(rec, faces):
        return np.concatenate([rec.predict_emotions(faces[s:s + L], logits=False)[1] for s in range(0, len(faces), L)])

    def lists_nograd(rec, faces):
        with torch.inference_mode():
            return lists(rec, faces)

    def facelab(analyzer, crops):
        return analyzer.predict_crops(crops)["emotion"]

    t, o = recognizers["torch"], recognizers["onnx"]
    make = {
        "eel_torch_one": lambda faces, crops: one(t, faces),
        "eel_torch_list": lambda faces, crops: lists(t, faces),
        "eel_torch_list_nograd": lambda faces, crops: lists_nograd(t, faces),
        "eel_onnx_one": lambda faces, crops: one(o, faces),
        "eel_onnx_list": lambda faces, crops: lists(o, faces),
    }
    for key, analyzer in analyzers.items():
        make[f"facelab_{key}"] = lambda faces, crops, a=analyzer: facelab(a, crops)
    n_warm = min(len(crops_np), 2 * L) if not args.quick else len(crops_np)
    fns = {k: (lambda f=f: f(crops_np, crops_u8)) for k, f in make.items()}
    warm = {k: (lambda f=f: f(crops_np[:n_warm], crops_u8[:n_warm])) for k, f in make.items()}
    times, outputs = timed_rounds(fns, args.repeats, warm)
    rates = {k: rate_stats(len(crops_np), ts) for k, ts in times.items()}
    peer_keys = [k for k in rates if k.startswith("eel_")]
    published = [k for k in peer_keys if k != "eel_torch_list_nograd"]
    fastest = max(peer_keys, key=lambda k: rates[k]["per_s"])
    for k, r in rates.items():
        r["ratio_to_peer_fastest"] = r["per_s"] / rates[fastest]["per_s"]
    ref = outputs[REFERENCE]
    agree = {k: agreement(ref, out, BF16_TOL if k == "facelab_default" and args.default_precision == "bf16"
                          else FP32_TOL) for k, out in outputs.items() if k != REFERENCE}
    return {"faces": len(crops_np), "crop_size": int(crops_u8.shape[-1]), "list_size": L, "rates": rates,
            "peer_fastest": fastest, "peer_fastest_published_api": max(published, key=lambda k: rates[k]["per_s"]),
            "reference": REFERENCE, "agreement": agree,
            "reference_classes": np.bincount(ref.argmax(1), minlength=8).tolist(), "_reference_probs": ref}


# --- part 2: end to end on photos -----------------------------------------------------------------------
def bench_photos(recognizer, analyzer, scenes, args) -> dict:
    import torch
    from facenet_pytorch import MTCNN

    from facelab.inference.tracking import match_boxes

    images = [s.image for s in scenes]
    mtcnn = MTCNN(keep_all=False, post_process=False, min_face_size=40, device="cpu")
    nograd = args.peer_nograd

    def publisher(imgs):
        """EmotiEffLib's example: MTCNN per image, prob > 0.9, frame[y1:y2, x1:x2], predict_emotions."""
        found = []
        ctx = torch.inference_mode() if nograd else contextlib.nullcontext()
        with ctx:
            for frame in imgs:
                boxes, probs = mtcnn.detect(frame, landmarks=False)
                if boxes is None or probs[0] is None:
                    found.append(([], None))
                    continue
                boxes = boxes[probs > 0.9]
                faces = []
                for box in boxes.astype(int):
                    x1, y1, x2, y2 = np.maximum(box[:4], 0)  # a box past the top/left edge: clip (no empty crops)
                    faces.append(frame[y1:y2, x1:x2, :])
                scores = recognizer.predict_emotions(faces, logits=False)[1] if faces else None
                found.append((boxes.tolist(), scores))
        return found

    def facelab(imgs):
        return analyzer.analyze(imgs)

    warm = images[:16]
    times, outputs = timed_rounds({"publisher": lambda: publisher(images), "facelab": lambda: facelab(images)},
                                       args.repeats, {"publisher": lambda: publisher(warm),
                                                      "facelab": lambda: facelab(warm)})
    pub, df = outputs["publisher"], outputs["facelab"]
    ok = df[df["status"] == "ok"]
    emotion_cols = [c for c in df.columns if c.startswith("emotion_")]
    n_truth = sum(len(s.boxes) for s in scenes)
    recall = {"publisher": 0, "facelab": 0}
    both, same = 0, 0
    for i, scene in enumerate(scenes):
        p_boxes, p_scores = pub[i]
        rows = ok[ok["input"] == i]
        f_boxes = rows[["x1", "y1", "x2", "y2"]].to_numpy().tolist()
        recall["publisher"] += len(match_boxes(scene.boxes, p_boxes, IOU_MATCH))
        recall["facelab"] += len(match_boxes(scene.boxes, f_boxes, IOU_MATCH))
        for a, b in match_boxes(p_boxes, f_boxes, IOU_MATCH):
            both += 1
            same += int(np.argmax(p_scores[a]) == np.argmax(rows[emotion_cols].to_numpy()[b]))
    n_pub = sum(len(b) for b, _ in pub)
    rates = {"publisher": rate_stats(len(images), times["publisher"]), "facelab": rate_stats(len(images), times["facelab"])}
    rates["facelab"]["ratio_to_publisher"] = rates["facelab"]["per_s"] / rates["publisher"]["per_s"]
    return {"photos": len(images), "size": list(images[0].shape[1::-1]), "true_faces": n_truth,
            "faces_found": {"publisher": n_pub, "facelab": int(len(ok))},
            "recall": {k: v / max(1, n_truth) for k, v in recall.items()},
            "faces_found_by_both": both, "class_agreement_on_shared_faces": same / max(1, both),
            "rates": rates, "facelab_precision": analyzer.precision}


# --- part 3: detection alone ------------------------------------------------------------------------------
def bench_detection(frames, args) -> dict:
    import inspect

    from facenet_pytorch import MTCNN

    from facelab.inference.tracking import match_boxes

    from facelab import faces as fl_faces

    truth = [[b for b in s.boxes if b[3] - b[1] >= 40] for s in frames]
    images = [s.image for s in frames]
    full = MTCNN(keep_all=True, post_process=False, min_face_size=40, device="cpu")

    def mtcnn_full(imgs):
        out = []
        for frame in imgs:
            boxes, probs = full.detect(frame, landmarks=False)
            out.append([] if boxes is None else [b for b, p in zip(boxes.tolist(), probs) if p > 0.9])
        return out

    make = {"mtcnn_full": mtcnn_full}
    result = {"frames": len(images), "size": list(images[0].shape[1::-1]), "true_faces_40px": sum(map(len, truth)),
              "detect_size": args.detect_size, "facelab_available": True}
    if "detect_size" in inspect.signature(fl_faces.detect_faces).parameters:
        def facelab_small(imgs):
            found = fl_faces.detect_faces(imgs, detect_size=args.detect_size, min_face_size=40, threshold=0.9)
            return [[f.box for f in fs] for fs in found]
        make["facelab_detect_size"] = facelab_small
    else:
        result["facelab_available"] = False
        result["facelab_note"] = "facelab.faces.detect_faces has no detect_size parameter yet"
    times, outputs = timed_rounds({k: (lambda f=f: f(images)) for k, f in make.items()}, args.repeats,
                                       {k: (lambda f=f: f(images[:1])) for k, f in make.items()})
    for key, found in outputs.items():
        hits = sum(len(match_boxes(t, f, IOU_MATCH)) for t, f in zip(truth, found))
        n_found = sum(len(f) for f in found)
        # any true face, any size
        matched_any = sum(len(match_boxes(s.boxes, f, IOU_MATCH)) for s, f in zip(frames, found))
        result[key] = {"recall_40px": hits / max(1, result["true_faces_40px"]), "detections": n_found,
                       "false_detections": int(n_found - matched_any), **rate_stats(len(images), times[key])}
    if "facelab_detect_size" in result:
        result["facelab_detect_size"]["ratio_to_full"] = result["facelab_detect_size"]["per_s"] / result["mtcnn_full"]["per_s"]
        result["recall_gap_points"] = 100 * (result["mtcnn_full"]["recall_40px"] - result["facelab_detect_size"]["recall_40px"])
    return result


# --- report ------------------------------------------------------------------------------------------------
def print_report(res: dict, quick: bool) -> None:
    m = res["machine"]
    flags = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in m["cpu"]["flags"].items())
    v = m["versions"]
    print(f"machine: {m['cpu']['model']}, {m['cpu']['logical_cores']} logical cores, torch threads {m['torch_threads']}, "
          f"ONNX Runtime threads {m['onnxruntime_threads']}")
    print(f"  flags: {flags}; facelab native bf16: {m['facelab_native_bf16']} (default precision {m['default_precision']})")
    print(f"  torch {v['torch']}, timm {v['timm']}, onnxruntime {v['onnxruntime']}, facenet-pytorch {v['facenet_pytorch']}, "
          f"opencv {v['cv2']}, Pillow {v['PIL']}, {PEER} {v[PEER]}, python {v['python']}")
    if quick:
        print("QUICK MODE: tiny sizes, 1 repeat -- the rates below are not measurements")
    c = res["crops"]
    print(f"\n1. recognizers on the same {c['faces']} face-world crops of {c['crop_size']} px "
          f"(network {ARCH}, 8 emotions, {SIZE} px; faces/s, median of {res['settings']['repeats']} [min-max]):")
    for key, r in c["rates"].items():
        label = LABELS[key].format(L=c["list_size"], P=res["machine"]["default_precision"])
        mark = "  <- EmotiEffLib's fastest" if key == c["peer_fastest"] else ""
        print(f"  {label:52s} {r['per_s']:7.1f}  [{r['per_s_min']:.1f}-{r['per_s_max']:.1f}]  "
              f"{r['ratio_to_peer_fastest']:.2f}x{mark}")
    net = res["network"]
    print(f"  the network's answers on these faces: classes {c['reference_classes']}, median top probability "
          f"{net['median_top_probability']:.2f}, {100 * net['accuracy_on_true_emotions']:.1f}% right (chance 12.5%)")
    print(f"  agreement with {LABELS[REFERENCE]} (fp32, the publisher's path); 'decided': the reference's two "
          "best classes further apart than the tolerance:")
    for key, a in c["agreement"].items():
        label = LABELS[key].format(L=c["list_size"], P=res["machine"]["default_precision"])
        print(f"  {label:52s} classes {100 * a['class_agreement']:6.2f}% ({a['disagreeing_faces']} differ); "
              f"|dp| max {a['max_abs_prob_diff']:.4f}, p99 {a['p99_abs_prob_diff']:.4f} (tol {a['tolerance']}); "
              f"decided faces {100 * a['class_agreement_decided']:.2f}% of {a['decided_faces']}")
    p = res["photos"]
    pr = p["rates"]
    print(f"\n2. end to end on {p['photos']} face-world photos of {p['size'][0]} x {p['size'][1]} px, "
          f"{p['true_faces']} faces (photos/s):")
    print(f"  publisher's pipeline (MTCNN per photo + {res['settings']['peer_e2e']}) {pr['publisher']['per_s']:7.2f}  "
          f"[{pr['publisher']['per_s_min']:.2f}-{pr['publisher']['per_s_max']:.2f}]; recall {100 * p['recall']['publisher']:.1f}%")
    print(f"  facelab FaceAnalyzer.analyze ({p['facelab_precision']}){'':18s} {pr['facelab']['per_s']:7.2f}  "
          f"[{pr['facelab']['per_s_min']:.2f}-{pr['facelab']['per_s_max']:.2f}]; recall {100 * p['recall']['facelab']:.1f}%"
          f"  = {pr['facelab']['ratio_to_publisher']:.2f}x")
    print(f"  same class on {100 * p['class_agreement_on_shared_faces']:.1f}% of the {p['faces_found_by_both']} faces "
          "both found (their crops differ: integer box slice vs facelab's roi_align)")
    d = res["detection"]
    print(f"\n3. detection alone, {d['frames']} frames of {d['size'][0]} x {d['size'][1]}, {d['true_faces_40px']} faces >= 40 px:")
    for key, label in (("mtcnn_full", "facenet-pytorch MTCNN, full frame, min_face_size 40"),
                       ("facelab_detect_size", f"facelab detect_faces(detect_size={d['detect_size']})")):
        if key in d:
            r = d[key]
            extra = f" = {r['ratio_to_full']:.2f}x" if "ratio_to_full" in r else ""
            print(f"  {label:52s} {r['per_s']:6.2f} frames/s{extra}; recall {100 * r['recall_40px']:.1f}%, "
                  f"{r['false_detections']} false of {r['detections']}")
    if not d["facelab_available"]:
        print(f"  facelab: {d['facelab_note']}")
    cpu = res["cpu_use"]
    print(f"\nrun: {cpu['wall_s']} s wall, own CPU {cpu['own_cpu_s']} s; other processes used "
          f"{cpu['other_processes_cpu_s']} CPU-s ({cpu['other_processes_mean_cores']} cores on average); "
          f"load average start {res['load_average']['start']}, end {res['load_average']['end']}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat, no timing claims")
    parser.add_argument("--json", type=Path, help="write every figure to this JSON file")
    parser.add_argument("--faces", type=int, default=500)
    parser.add_argument("--crop-size", type=int, default=180)
    parser.add_argument("--calibration-faces", type=int, default=256)
    parser.add_argument("--list-size", type=int, default=32)
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--photo-size", default="640x480")
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--detect-size", type=int, default=640)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peer-dir", type=Path, default=REPO / "build" / "peers")
    parser.add_argument("--no-install", action="store_true", help="use an installed peer only; never run pip")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for every method (default: torch's choice; --quick: 1)")
    args = parser.parse_args(argv)
    if args.quick:
        args.faces, args.calibration_faces, args.list_size = 16, 32, 8
        args.photos, args.photo_size, args.frames, args.repeats = 3, "320x240", 1, 1
    warnings.filterwarnings("ignore")
    meter, load_start = CpuMeter(), load_average()

    try:
        site = ensure_peer(args.peer_dir, install=not args.no_install)
    except PeerUnavailable as exc:
        print(f"SKIP: {exc}", file=sys.stderr)
        return EXIT_SKIP
    sys.path.append(str(site))  # last: the peer's wheel also ships top-level 'tests' and 'models' folders

    import torch

    if args.threads or args.quick:
        # quick mode runs inside the test suite, often next to other jobs: on busy cores two
        # OpenMP threads wait on each other at every small operator (one face at a time
        # through the eager network took 2.4 s instead of 33 ms with one thread)
        torch.set_num_threads(args.threads or 1)
    from facelab.inference.analyze import FaceAnalyzer, cpu_supports_bf16, resolve_precision
    from facelab.checkpoints import import_hsemotion

    args.default_precision = resolve_precision("auto")
    info = machine()
    info.update({"onnxruntime_threads": torch.get_num_threads() if args.threads or args.quick else "default",
                 "facelab_native_bf16": cpu_supports_bf16(), "default_precision": args.default_precision})
    res = {"settings": {k: (shown(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, "machine": info}

    t0 = time.perf_counter()
    calibration, cal_labels = face_crops(args.calibration_faces, args.crop_size, seed=1)
    crops, crop_labels = face_crops(args.faces, args.crop_size, seed=0)
    w, h = (int(v) for v in args.photo_size.split("x"))
    scenes = photos(args.photos, w, h)
    frames = hd_frames(args.frames)
    print(f"rendered {len(crops)} crops, {len(calibration)} calibration crops, {len(scenes)} photos, "
          f"{len(frames)} 1080p frames in {time.perf_counter() - t0:.1f} s", flush=True)

    with tempfile.TemporaryDirectory(prefix="bench_peers_") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        model = make_network(calibration, cal_labels)
        pt, _ = write_publisher_files(model, tmp / "home" / ".emotiefflib")
        ckpt = tmp / "facelab" / MODEL_NAME
        # backbone= given: import_hsemotion's name-based guess does not see the Conv2dSame layers
        # of this file (their class names are module paths) and would pick 'efficientnet_b0'
        import_hsemotion(pt, ckpt, backbone=ARCH)
        ckpt = ckpt.with_name(ckpt.name + ".safetensors")
        print(f"network made, saved for EmotiEffLib and imported by facelab in {time.perf_counter() - t0:.1f} s",
              flush=True)
        with offline_peer_home(tmp / "home"), ort_threads(torch.get_num_threads() if args.threads or args.quick else None):
            import emotiefflib
            from emotiefflib.facial_analysis import EmotiEffLibRecognizerOnnx, EmotiEffLibRecognizerTorch

            recognizers = {"torch": EmotiEffLibRecognizerTorch(MODEL_NAME, device="cpu"),
                           "onnx": EmotiEffLibRecognizerOnnx(MODEL_NAME)}
            res["machine"]["versions"].update(module_versions(
                ("timm", "onnxruntime", "onnx", "facenet_pytorch", "cv2", "PIL", PEER)))
            res["machine"]["versions"][PEER] = emotiefflib.__version__
            res["peer"] = {"package": f"{PEER}=={emotiefflib.__version__}", "installed_in": shown(site),
                           "how": "pip install --no-deps --target (this script); on sys.path of this process only",
                           "model_files": f"$HOME/.emotiefflib/{MODEL_NAME}.pt/.onnx in a temporary HOME"}
            # min_face_size=40 as the publisher's pipeline (it matters only to analyze(), in part 2)
            analyzers = {"default": FaceAnalyzer(ckpt, min_face_size=40),
                         "fp32": FaceAnalyzer(ckpt, precision="fp32", min_face_size=40),
                         "onnx": FaceAnalyzer(ckpt, backend="onnx", min_face_size=40)}
            t0 = time.perf_counter()
            res["crops"] = bench_crops(recognizers, analyzers, crops, args)
            ref = np.asarray(res["crops"].pop("_reference_probs"))
            res["network"] = {"architecture": ARCH, "classifier": "Sequential(Linear(1280, 8))", "input": SIZE,
                              "weights": "timm initialisation, seed 0; classifier: logistic regression on the top "
                                         f"{PCS} whitened principal components of {len(calibration)} calibration "
                                         "faces' features (other faces than the measured ones)",
                              "file_name": MODEL_NAME,
                              "median_top_probability": float(np.median(ref.max(1))),
                              "accuracy_on_true_emotions": float(np.mean(ref.argmax(1) == crop_labels))}
            print(f"part 1 (recognizers on crops) done in {time.perf_counter() - t0:.1f} s", flush=True)
            fastest = res["crops"]["peer_fastest"]
            args.peer_nograd = fastest == "eel_torch_list_nograd"
            engine = "onnx" if "onnx" in fastest else "torch"
            res["settings"]["peer_e2e"] = f"EmotiEffLib {engine}, one list per photo" + (
                ", inference_mode" if args.peer_nograd else "")
            t0 = time.perf_counter()
            res["photos"] = bench_photos(recognizers[engine], analyzers["default"], scenes, args)
            print(f"part 2 (end to end on photos) done in {time.perf_counter() - t0:.1f} s", flush=True)
    t0 = time.perf_counter()
    res["detection"] = bench_detection(frames, args)
    print(f"part 3 (detection) done in {time.perf_counter() - t0:.1f} s", flush=True)
    res["cpu_use"] = meter.report()
    res["load_average"] = {"start": load_start, "end": load_average()}
    print()
    print_report(res, args.quick)
    if args.json:
        print(f"\nfigures written to {write_json(args.json, res)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

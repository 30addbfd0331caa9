"""The ``facelab`` command: its argument parsers, and the dispatch to the sub-commands.

Each sub-command is a function ``cmd_<name>(args) -> int`` in a module of
:mod:`facelab.apps.commands`, registered here by an ``add_<name>`` parser function.  Exit
codes: 0 all inputs processed, 2 some inputs failed (one line per failure on stderr), 1
usage errors.  User mistakes never print a traceback: :class:`facelab.errors.FacelabError` is
turned into one clear line.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from facelab import __version__
from facelab.apps.commands import EXIT_INPUT_FAILED, EXIT_OK, EXIT_USAGE, report_failure  # noqa: F401 - re-exported
from facelab.errors import FacelabError
from facelab.synth.writers import DATASETS

#: `facelab train TASK` / `facelab evaluate TASK` (the layouts they read: commands.train.TRAIN_DATASETS).
TRAIN_TASKS = ("identity", "attributes", "emotion")


class _Parser(argparse.ArgumentParser):
    """argparse exits with 2 on usage errors; facelab reserves 2 for failed inputs."""

    def error(self, message):  # noqa: D401 - argparse API
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _command(sub, name: str, runs: str, help: str) -> argparse.ArgumentParser:  # noqa: A002 - argparse's word
    """Add sub-command ``name``, run by ``facelab.apps.commands.<runs>(args)`` (``runs`` = "module.function").

    Its ``--help`` text is the one-line ``help`` followed by its longer entry in DESCRIPTIONS, if any."""
    module, function = runs.split(".")
    parser = sub.add_parser(name, help=help, description=DESCRIPTIONS.get(name))
    parser.set_defaults(run=(module, function))
    return parser


# --- argument types -------------------------------------------------------------
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


def _detect_size(text) -> int:
    """``--detect-size``: 0 (full resolution) or a working size of at least 12 pixels."""
    value = _int_at_least(0)(text)
    if 0 < value < 12:
        raise argparse.ArgumentTypeError(f"{text} must be 0 (full resolution) or >= 12 pixels")
    return value


# --- sub-commands ---------------------------------------------------------------
#: The longer description of each command whose --help explains more than its one-line help.
DESCRIPTIONS = {
    "detect": ("One result per input: its faces (box x1 y1 x2 y2 in pixels, probability, 5 landmarks) "
               "or its error. Bad inputs never stop the batch; exit code 2 if any input failed."),
    "prepare": ("Writes the largest face of ROOT/<path> to CROPS/<path> (same names; other files copied), "
                "lists unreadable images and images without a face in CROPS/failures.csv. Resumable: run "
                "it again after an interruption. Exit code 2 if any image failed."),
    "predict": ("One row per face (per frame for videos); an input without a face or that fails to load "
                "still gets one row, with its status. Exit code 2 if any input failed."),
    "download": ("Files go to $FACELAB_HOME/zoo/downloads (default ~/.cache/facelab). FACELAB_ZOO_MIRROR "
                 "(a folder or an http(s) URL) replaces their origin. Exit code 2 if any download failed."),
}


def _detector_options(p) -> None:
    """The face detector's knobs, the same for `detect` and `predict`."""
    p.add_argument("--min-face-size", type=_int_at_least(12), default=20,
                   help="MTCNN: smallest face side in pixels (default 20)")
    p.add_argument("--threshold", type=_probability, default=0.9,
                   help="MTCNN: keep faces with probability >= T (default 0.9)")


def _task_and_data(p, layouts: str) -> None:
    """`train` and `evaluate`: the task, and the dataset folder it reads."""
    p.add_argument("task", choices=TRAIN_TASKS)
    p.add_argument("--data", required=True, help=f"dataset root ({layouts} layout)")


def add_tour(sub) -> None:
    p = _command(sub, "tour", "train.cmd_tour", help="run the teaching pipeline on the built-in face world")
    p.add_argument("--out", default="build/tour", help="output folder (default: build/tour)")


def add_synth(sub) -> None:
    p = _command(sub, "synth", "train.cmd_synth",
                 help="write a synthetic face dataset in a real dataset's on-disk format")
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


def add_detect(sub) -> None:
    p = _command(sub, "detect", "detect_predict.cmd_detect",
                 help="find faces (MTCNN) in images and folders of images")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders of images")
    p.add_argument("--json", action="store_true", help="print one JSON document (a list, one object per input)")
    p.add_argument("--annotate", metavar="DIR", help="also write copies with boxes and probabilities drawn")
    _detector_options(p)
    p.add_argument("--batch-size", type=_int_at_least(1), default=32,
                   help="images read and detected together (default 32)")


def add_prepare(sub) -> None:
    p = _command(sub, "prepare", "train.cmd_prepare",
                 help="detect and crop a whole image dataset once, in the same folder layout")
    p.add_argument("root", metavar="ROOT", help="dataset folder")
    p.add_argument("--out", required=True, metavar="CROPS", help="output folder (created)")
    p.add_argument("--policy", choices=("tight", "margin", "center"), default="tight",
                   help="tight = detector box, no margin (paper, default); margin; center = centre crop")
    p.add_argument("--size", type=_int_at_least(1), default=112, help="crop side in pixels (default 112)")
    p.add_argument("--margin", type=float, default=0.2, help="--policy margin: fraction added per side (0.2)")
    p.add_argument("--workers", type=_int_at_least(1), default=None,
                   help="processes (default: 1 below 8 CPU cores, else min(4, cores / 2))")
    _detector_options(p)
    p.add_argument("--retry-failed", action="store_true", help="retry images listed in an earlier failures.csv")
    p.add_argument("--boxes-from", metavar="CROPS2",
                   help="reuse the faces an earlier prepare of ROOT found (its boxes.csv) instead of running MTCNN "
                        "again, e.g. margin crops after tight ones")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_train(sub) -> None:
    p = _command(sub, "train", "train.cmd_train",
                 help="train identity / attribute / emotion heads in the paper's stages")
    _task_and_data(p, "VGGFace2 / UTKFace / AffectNet")
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


def add_evaluate(sub) -> None:
    p = _command(sub, "evaluate", "train.cmd_evaluate",
                 help="metrics of a checkpoint: LFW protocol / attributes / emotions")
    _task_and_data(p, "LFW / UTKFace / AffectNet")
    p.add_argument("--model", required=True,
                   help="facelab checkpoint (.safetensors), model-zoo name, or .onnx file with --backend onnx")
    p.add_argument("--backend", choices=("torch", "onnx"), default="torch")
    p.add_argument("--split", default="val", help="AffectNet split to evaluate (default: val)")
    p.add_argument("--classes", type=int, choices=(8, 7), help="emotion classes of the data (default: the model's)")
    p.add_argument("--splits", type=int, default=10, help="LFW protocol: number of random splits (default 10)")
    p.add_argument("--img-size", type=int, help="input size (default: the checkpoint's)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--json", help="also write all metrics (confusion matrices included) to this JSON file")


def add_predict(sub) -> None:
    p = _command(sub, "predict", "detect_predict.cmd_predict",
                 help="emotion / age / gender / race of every face in images, folders and videos")
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
    _detector_options(p)


def add_export_onnx(sub) -> None:
    p = _command(sub, "export-onnx", "detect_predict.cmd_export_onnx",
                 help="export a checkpoint to ONNX (needs the onnx extra)")
    p.add_argument("checkpoint", metavar="CKPT", help="facelab checkpoint (.safetensors)")
    p.add_argument("out", metavar="OUT.onnx")
    p.add_argument("--img-size", type=int, help="crop side baked into the graph (default: the checkpoint's)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 17, default 17)")


def add_video_features(sub) -> None:
    p = _command(sub, "video-features", "video.cmd_video_features",
                 help="per-frame face features of AFEW-/VGAF-like clips -> one .npz")
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


def add_video_classify(sub) -> None:
    p = _command(sub, "video-classify", "video.cmd_video_classify",
                 help="train a clip classifier on Train, report accuracy on Val")
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


def add_download(sub) -> None:
    p = _command(sub, "download", "download.cmd_download",
                 help="download the paper's published networks (model zoo) and check their sha256")
    p.add_argument("names", nargs="*", metavar="NAME", help="zoo models to download (see --list)")
    switches = {"--all": "every model facelab can load (others are skipped)",
                "--list": "list the models: tasks, architecture, size, cached",
                "--force": "download again even when a checked copy is there",
                "--no-progress": "no progress bar",
                "--no-convert": "only download; the conversion into a facelab checkpoint then happens on first load"}
    for flag, text in switches.items():
        p.add_argument(flag, action="store_true", help=text)


# --- parser -------------------------------------------------------------------
ADDERS = [add_tour, add_synth, add_detect, add_prepare, add_train, add_evaluate, add_predict, add_export_onnx,
          add_video_features, add_video_classify, add_download]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="facelab", description="facelab: face detection, multi-task training, prediction and video descriptors (images are RGB).")
    parser.add_argument("--version", action="version", version=f"facelab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for add in ADDERS:
        add(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    module, function = args.run
    try:
        # The commands load torch, timm and pandas (seconds): only the chosen one is imported, so
        # `facelab --help` and usage errors stay instant.
        command = getattr(importlib.import_module(f"facelab.apps.commands.{module}"), function)
        return int(command(args) or 0)
    except FacelabError as exc:
        print(f"facelab: error: {exc}", file=sys.stderr)
        return EXIT_INPUT_FAILED
    except KeyboardInterrupt:
        print("facelab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

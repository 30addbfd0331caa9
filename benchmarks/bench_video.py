"""Video pipeline benchmark: frames per second and peak memory (issue 8, ``bench_video``).

Measures, on the same clip of the built-in face world (one person, a face in every frame):

1. **Speed, end to end** (decode -> detect -> tight crop -> penultimate features):

   * *naive*: the per-frame loop of reference implementations -- decode one frame,
     MTCNN on that one frame, PIL crop of the largest box, PIL resize, to-tensor,
     normalise, a batch of one, fp32 NCHW, ``torch.no_grad``;
   * *facelab*: :func:`facelab.video.video_features` -- streamed decoding, MTCNN on
     ``batch_frames`` same-size frames at once, all crops as one ``roi_align``, the
     network in batches (channels_last, bf16 where the CPU has native bfloat16,
     BatchNorm folded).

   Medians over ``--repeats`` runs; the ratio is printed like ``2.3x``.
2. **Memory**: peak RSS (``resource.getrusage(...).ru_maxrss``) of a fresh process that
   runs ``video_features`` on the clip, and on a clip 10x longer; frames are streamed, so
   the ratio should stay near 1 (target <= 1.2).

Usage::

    python benchmarks/bench_video.py [--backbone efficientnet_b0] [--frames 48] [--size 256]
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


# --- machine ------------------------------------------------------------------------------


def machine_description() -> str:
    import av
    import torch

    from facelab.analyze import cpu_supports_bf16

    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",) * 3
    return (f"machine: {cpu}; {os.cpu_count()} logical CPUs, torch threads {torch.get_num_threads()}; "
            f"native bf16: {cpu_supports_bf16()}; load average {load[0]:.2f}\n"
            f"software: Python {platform.python_version()}, torch {torch.__version__}, PyAV {av.__version__}, "
            f"{platform.system()} {platform.release()}")


# --- the clips -------------------------------------------------------------------------------


def write_clips(folder: Path, n_frames: int, size: int, seed: int = 0) -> tuple[Path, Path]:
    """A face-world clip of ``n_frames`` and one 10x longer (the same frames, cycled)."""
    from facelab.synth.clips import render_single_clip, write_clip
    from facelab.synth.people import sample_person

    rng = np.random.default_rng(seed)
    frames = list(render_single_clip(sample_person(seed, 1), "Happiness", n_frames=n_frames, size=size,
                                     rng=rng, nuisance_level=0.3))
    short, long = folder / "clip.mp4", folder / "clip_x10.mp4"
    write_clip(short, frames, fps=25)
    write_clip(long, (frames[i % n_frames] for i in range(10 * n_frames)), fps=25)
    return short, long


def make_model(backbone: str):
    import torch

    from facelab.models import MultiTaskNet

    torch.manual_seed(0)
    return MultiTaskNet(backbone, emotion_classes=8).eval()  # random weights: speed only


# --- the naive per-frame loop ----------------------------------------------------------------


def naive_video_features(path, model, mtcnn, size: int) -> tuple[int, int]:
    """Reference-style loop; returns (frames, frames with a face)."""
    import av
    import torch
    from PIL import Image
    from torchvision import transforms

    from facelab.labels import IMAGENET_MEAN, IMAGENET_STD

    to_input = transforms.Compose([transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    n = n_face = 0
    with av.open(str(path)) as container, torch.no_grad():
        for frame in container.decode(video=0):
            n += 1
            image = Image.fromarray(frame.to_ndarray(format="rgb24"))
            boxes, probs = mtcnn.detect(image)
            if boxes is None:
                continue
            keep = [np.asarray(b, dtype=float) for b, p in zip(boxes, probs) if p is not None and p > 0.9]
            if not keep:
                continue
            x1, y1, x2, y2 = max(keep, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
            face = image.crop((int(x1), int(y1), int(x2), int(y2))).resize((size, size), Image.BILINEAR)
            model.features(to_input(face).unsqueeze(0))
            n_face += 1
    return n, n_face


# --- timing ------------------------------------------------------------------------------------


def median_time(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def speed(args, short: Path) -> None:
    import torch
    from facenet_pytorch import MTCNN

    from facelab.video import face_network, video_features

    model = make_model(args.backbone)
    size = int(model.preprocessing["image_size"])
    t0 = time.perf_counter()
    network = face_network(model, precision=args.precision)
    prepare_s = time.perf_counter() - t0
    mtcnn = MTCNN(keep_all=True, post_process=False, min_face_size=20, device="cpu").eval()

    # warm-up (first calls allocate, TorchScript profiles)
    video_features(short, network, batch_frames=args.batch_frames)
    naive_video_features(short, model, mtcnn, size)

    t_facelab, clip = median_time(lambda: video_features(short, network, batch_frames=args.batch_frames),
                                  args.repeats)
    t_naive, (n, n_face_naive) = median_time(lambda: naive_video_features(short, model, mtcnn, size), args.repeats)
    fps_facelab, fps_naive = clip.n_frames / t_facelab, n / t_naive
    print(f"clip: {clip.n_frames} frames of {args.size} x {args.size} px, faces found: facelab "
          f"{int(clip.has_face.sum())}, naive {n_face_naive}")
    print(f"network: {args.backbone} at {size} px, facelab precision {network.precision} "
          f"(prepared once in {prepare_s:.1f} s), torch threads {torch.get_num_threads()}")
    print(f"naive per-frame loop : {fps_naive:7.2f} frames/s  (median of {args.repeats})")
    print(f"facelab video_features: {fps_facelab:7.2f} frames/s  (median of {args.repeats}, "
          f"batch_frames={args.batch_frames})")
    print(f"speed-up {args.backbone}: {fps_facelab / fps_naive:.1f}x  (target >= 2x)")


# --- memory -------------------------------------------------------------------------------------


def child_peak_rss(args, clip: Path) -> float:
    """Run ``video_features`` on ``clip`` in a fresh interpreter; its peak RSS in MiB."""
    cmd = [sys.executable, __file__, "--child-rss", str(clip), "--backbone", args.backbone,
           "--precision", args.precision, "--batch-frames", str(args.batch_frames)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    line = [ln for ln in out.splitlines() if ln.startswith("PEAK_RSS_KIB ")][-1]
    return int(line.split()[1]) / 1024


def child_main(args) -> None:
    from facelab.video import face_network, video_features

    network = face_network(make_model(args.backbone), precision=args.precision)
    clip = video_features(args.child_rss, network, batch_frames=args.batch_frames)
    assert clip.n_frames > 0
    # ru_maxrss is in KiB on Linux (bytes on macOS)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if sys.platform == "darwin":
        peak //= 1024
    print(f"PEAK_RSS_KIB {peak}")


def memory(args, short: Path, long: Path) -> None:
    rss_short = child_peak_rss(args, short)
    rss_long = child_peak_rss(args, long)
    print(f"peak RSS: {args.frames} frames {rss_short:.0f} MiB, {10 * args.frames} frames {rss_long:.0f} MiB, "
          f"ratio {rss_long / rss_short:.2f} (target <= 1.2)")


# --- descriptor comparison (the paper's claim about video descriptors) ----------------------


def train_emotion_model(args):
    """A small emotion network trained on tight crops (the renderer's face box, from the
    AffectNet-style CSV) of the AffectNet-like face world; random init (no ImageNet
    weights offline).  Cached in ``data/cache/models``."""
    from facelab.checkpoints import load_checkpoint, save_checkpoint
    from facelab.datasets import read_affectnet
    from facelab.models import MultiTaskNet
    from facelab.synth.writers import ensure_dataset
    from facelab.train import train_emotion

    name = (f"bench_video_emotion_{args.backbone}_{args.img_size}px_n{args.affectnet_n}_"
            f"e{args.epochs[0]}-{args.epochs[1]}_lr{args.lr[0]:g}-{args.lr[1]:g}_seed{args.seed}")
    stem = REPO / "data" / "cache" / "models" / name
    if stem.with_suffix(".safetensors").is_file():
        print(f"emotion model: cached {stem}.safetensors")
        return load_checkpoint(stem.with_suffix(".safetensors"))
    photos = ensure_dataset("affectnet", n=args.affectnet_n, size=112, seed=args.seed, layout="csv",
                            progress=False)
    model = MultiTaskNet(args.backbone)
    t0 = time.perf_counter()
    history = train_emotion(model, read_affectnet(photos, "train"), val_set=read_affectnet(photos, "val"),
                            epochs=tuple(args.epochs), lr=tuple(args.lr), batch_size=32, img_size=args.img_size,
                            seed=args.seed, progress=False)
    print(f"emotion model: {args.backbone} at {args.img_size} px trained in {time.perf_counter() - t0:.0f} s "
          f"on {args.affectnet_n} AffectNet-like photos (tight crops); last epoch:\n"
          f"{history.tail(1).to_string(index=False)}")
    save_checkpoint(model, stem)
    return model


def clip_split(dataset_root: Path, reader, key: str, split: str, network, group: bool, args):
    from facelab.video import ClipFailure, extract_clip_features

    ds = reader(dataset_root, split)
    paths = [p for p, _ in ds.items]
    labels = np.array([lab[key] for _, lab in ds.items])
    clips = extract_clip_features(paths, network, group=group, every=args.every, errors="collect",
                                  cache_dir=REPO / "data" / "cache" / "video_features", progress=False)
    failed = [c for c in clips if isinstance(c, ClipFailure)]
    if failed:
        raise SystemExit(f"{len(failed)} clips failed, first: {failed[0]}")
    with_face = np.mean([c.has_face.mean() for c in clips])
    return clips, labels, with_face


def cross_validated(clips, y, group: bool, classifier: str, folds: int, seed: int) -> dict:
    """Mean accuracy of :func:`compare_video_descriptors` over stratified k folds of all clips."""
    from sklearn.model_selection import StratifiedKFold

    from facelab.pooling import compare_video_descriptors

    totals: dict = {}
    for train_idx, test_idx in StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y):
        result = compare_video_descriptors([clips[i] for i in train_idx], y[train_idx],
                                           [clips[i] for i in test_idx], y[test_idx], group=group,
                                           classifier=classifier, seed=seed)
        for label, acc in result.items():
            totals.setdefault(label, []).append(acc)
    return {label: float(np.mean(v)) for label, v in totals.items()}


def descriptors(args) -> None:
    """On AFEW-like clips: middle frame vs mean pooling vs mean+max+min+std; on VGAF-like
    clips: the group descriptor vs chance.  LinearSVC and RandomForest(1000 trees), on the
    official Train/Val split and with k-fold cross-validation over all clips."""
    from facelab.datasets import read_afew, read_vgaf
    from facelab.pooling import compare_video_descriptors
    from facelab.synth.writers import ensure_dataset
    from facelab.video import face_network

    if args.model:
        from facelab.checkpoints import load_checkpoint

        model = load_checkpoint(args.model)
        print(f"emotion model: {args.model} ({model.backbone_name} at {model.preprocessing['image_size']} px)")
    else:
        model = train_emotion_model(args)
    network = face_network(model, precision="fp32")
    for name, reader, key, group, n, size in (("afew", read_afew, "emotion", False, args.afew_n, 96),
                                               ("vgaf", read_vgaf, "group", True, args.vgaf_n, 128)):
        root = ensure_dataset(name, n=n, size=size, seed=args.seed, progress=False)
        t0 = time.perf_counter()
        train, y_train, face_train = clip_split(root, reader, key, "train", network, group, args)
        test, y_test, face_test = clip_split(root, reader, key, "val", network, group, args)
        print(f"{name.upper()}-like: {len(train)} train / {len(test)} val clips, every {args.every}. frame, "
              f"frames with a face {100 * face_train:.0f}% / {100 * face_test:.0f}% "
              f"(features in {time.perf_counter() - t0:.0f} s)")
        all_clips, all_y = train + test, np.concatenate([y_train, y_test])
        print(f"  {'classifier descriptor':<35s} {'Train->Val':>10s} {f'{args.folds}-fold CV':>10s}")
        for classifier in ("svc", "rf"):
            split = compare_video_descriptors(train, y_train, test, y_test, group=group, classifier=classifier,
                                              seed=args.seed)
            cv = cross_validated(all_clips, all_y, group, classifier, args.folds, args.seed)
            for label in split:
                print(f"  {classifier:<4s} {label:<30s} {100 * split[label]:9.1f}% {100 * cv[label]:9.1f}%")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbone", default="efficientnet_b0")
    p.add_argument("--frames", type=int, default=48, help="frames of the short clip (the long one has 10x)")
    p.add_argument("--size", type=int, default=256, help="frame side in pixels")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-frames", type=int, default=16)
    p.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"])
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--skip-speed", action="store_true")
    p.add_argument("--child-rss", default=None, help=argparse.SUPPRESS)
    d = p.add_argument_group("descriptor comparison (--descriptors)")
    d.add_argument("--descriptors", action="store_true",
                   help="instead of speed/memory: train a small emotion CNN on the AffectNet-like face world "
                        "and compare clip descriptors on AFEW-/VGAF-like clips (minutes)")
    d.add_argument("--model", default=None,
                   help="an emotion checkpoint to use (e.g. from notebook 04) instead of training a small one")
    d.add_argument("--img-size", type=int, default=48)
    d.add_argument("--epochs", type=int, nargs=2, default=(1, 12), help="stage A, stage B epochs")
    d.add_argument("--lr", type=float, nargs=2, default=(3e-3, 2e-3),
                   help="stage A, stage B learning rates (random init: higher than the paper's fine-tuning)")
    d.add_argument("--affectnet-n", type=int, default=2400)
    d.add_argument("--afew-n", type=int, default=140, help="AFEW-like training clips (val: half)")
    d.add_argument("--vgaf-n", type=int, default=60, help="VGAF-like training clips (val: half)")
    d.add_argument("--every", type=int, default=2)
    d.add_argument("--folds", type=int, default=5, help="cross-validation folds over all clips")
    d.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.child_rss:
        child_main(args)
        return
    print(machine_description())
    if args.descriptors:
        if args.backbone == "efficientnet_b0" and "--backbone" not in (argv or sys.argv):
            args.backbone = "lcnet_050"  # trains from scratch in minutes on a CPU (as the demo's tiny model)
        descriptors(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        short, long = write_clips(Path(tmp), args.frames, args.size)
        if not args.skip_speed:
            speed(args, short)
        if not args.skip_memory:
            memory(args, short, long)


if __name__ == "__main__":
    main()

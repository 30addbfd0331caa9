"""Video at real-time speed: frames/s, real-time factor, peak memory and face tracks (issue 18).

On a face-world crowd clip (``facelab.synth.clips.write_crowd_clip``: 1920 x 1080, 25 fps, 20 s,
6 people who walk, turn, cross, hide each other, leave the frame and come back; the truth of every
face is known) or on any clip you give it, this script runs ``FaceAnalyzer.analyze_video`` --
streamed decoding, MTCNN at a working resolution every ``--detect-every`` frames, face tracks, the
emotion network on every face of every frame -- and prints:

* frames/s and the real-time factor (clip duration / processing time) for the course network
  (``mobilenetv4_conv_small`` at 64 px) and for ``efficientnet_b0`` at 224 px.  The networks have
  random weights: their speed does not depend on what they learned;
* peak RSS of a fresh process for the clip, and for the same clip 10x longer (its packets repeated,
  no re-encoding): frames are streamed, so the ratio should stay near 1;
* ID switches per person per minute and the fraction of true faces covered by their correct track
  (``facelab.inference.tracking.track_metrics``; true faces less than half visible are left out).

Every measurement runs in its own process (fresh memory, one model).  ``--quick`` uses a tiny clip and
makes no timing claim: ``make test`` runs it so that the script cannot rot.

Usage::

    python benchmarks/bench_video.py [CLIP.mp4] [--detect-every 5] [--detect-size 640] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common import machine, machine_text, write_json  # noqa: E402

#: The networks timed: name -> (timm backbone, input size).
NETWORKS = {"course": ("mobilenetv4_conv_small", 64), "efficientnet_b0": ("efficientnet_b0", 224)}
MIN_VISIBLE = 0.5  # true faces less visible than this are not counted as faces to track


# --- the clip ---------------------------------------------------------------------------------
def crowd_clip(folder: Path, *, width: int, height: int, duration: float, people: int, fps: int = 25):
    """The rendered clip and its truth (cached beside it as JSON: per frame, visible faces' ids and boxes)."""
    from facelab.synth.clips import write_crowd_clip

    stem = f"crowd_{width}x{height}_{people}p_{duration:g}s_{fps}fps"
    clip, truth_file = folder / f"{stem}.mp4", folder / f"{stem}.truth.json"
    if not (clip.is_file() and truth_file.is_file()):
        folder.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        truth = write_crowd_clip(clip, people, width=width, height=height, fps=fps, duration=duration, seed=0)
        print(f"rendered {clip.name} in {time.perf_counter() - t0:.1f} s")
        frames = [[[f.identity, [float(v) for v in f.box]] for f in faces if f.visible >= MIN_VISIBLE]
                  for faces in truth]
        truth_file.write_text(json.dumps(frames))
    return clip, json.loads(truth_file.read_text())


def repeat_clip(src: Path, dst: Path, times: int) -> Path:
    """``src`` played ``times`` times in a row, by copying its packets (PyAV; no re-encoding)."""
    import av

    if dst.is_file():
        return dst
    with av.open(str(src)) as inp:
        stream = inp.streams.video[0]
        packets = [p for p in inp.demux(stream) if p.size]
        step = max(p.pts for p in packets) + (packets[1].pts - packets[0].pts if len(packets) > 1 else 1)
        with av.open(str(dst), "w") as out:
            target = out.add_stream_from_template(stream)
            for k in range(times):
                for p in packets:
                    p.pts, p.dts = p.pts + (step if k else 0), (p.dts + step) if (k and p.dts is not None) else p.dts
                    p.stream = target
                    out.mux(p)
    return dst


# --- one measurement, in a fresh process -------------------------------------------------------
def child(args) -> None:
    """Run the analyzer on the clip; print one JSON line: seconds, frames, rows, peak RSS, tracks."""
    import torch

    from facelab.inference.analyze import FaceAnalyzer
    from facelab.models import MultiTaskNet

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    backbone, size = NETWORKS[args.network]
    model = MultiTaskNet(backbone, emotion_classes=8).eval()
    model.preprocessing["image_size"] = size
    analyzer = FaceAnalyzer(model, precision=args.precision, batch_size=64)
    seconds = []
    for _ in range(args.passes):  # the first pass includes the one-time set-up (MTCNN, tracing the network)
        t0 = time.perf_counter()
        df = analyzer.analyze_video(args.clip, detect_size=args.detect_size or None, detect_every=args.detect_every)
        seconds.append(time.perf_counter() - t0)
    ok = df[df["status"] == "ok"]
    frames = int(df["frame"].max()) + 1 if len(df) else 0
    result = {"seconds": seconds[-1], "seconds_first_pass": seconds[0], "frames": frames, "faces": int(len(ok)),
              "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
              "precision": analyzer.precision}
    if args.tracks_out:
        by_frame = [[[int(t), [float(v) for v in b]] for t, b in
                     zip(g["track"], g[["x1", "y1", "x2", "y2"]].to_numpy())] for _, g in
                    ok.groupby("frame")] if len(ok) else []
        index = sorted(ok["frame"].unique()) if len(ok) else []
        tracks = [[] for _ in range(frames)]
        for f, faces in zip(index, by_frame):
            tracks[int(f)] = faces
        Path(args.tracks_out).write_text(json.dumps(tracks))
    print("RESULT " + json.dumps(result))


def measure(args, clip: Path, network: str, tracks_out: Path | None = None, passes: int = 2) -> dict:
    cmd = [sys.executable, __file__, "--child", str(clip), "--network", network, "--threads", str(args.threads),
           "--detect-size", str(args.detect_size), "--detect-every", str(args.detect_every),
           "--precision", args.precision, "--passes", str(passes)]
    if tracks_out is not None:
        cmd += ["--tracks-out", str(tracks_out)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
    return json.loads(next(line for line in out.stdout.splitlines() if line.startswith("RESULT "))[7:])


def clip_duration(clip: Path) -> tuple[float, int]:
    import av

    with av.open(str(clip)) as c:
        s = c.streams.video[0]
        frames = s.frames or sum(1 for _ in c.demux(s) if _.size)
        fps = float(s.average_rate or 25)
    return frames / fps, frames


def tracking_scores(truth, tracks_file: Path, fps: float) -> dict:
    from facelab.inference.tracking import track_metrics

    tracks = json.loads(tracks_file.read_text())
    n = min(len(truth), len(tracks))
    m = track_metrics([[i for i, _ in f] for f in truth[:n]], [[b for _, b in f] for f in truth[:n]],
                      [[i for i, _ in f] for f in tracks[:n]], [[b for _, b in f] for f in tracks[:n]])
    return {"people": m.n_people, "tracks": m.n_tracks, "coverage": m.coverage, "recall": m.recall,
            "id_switches": m.id_switches, "switches_per_person_per_minute": m.switches_per_minute(fps)}


# --- the report ---------------------------------------------------------------------------------
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("clip", nargs="?", help="a video to measure (default: the rendered 1080p crowd clip)")
    ap.add_argument("--quick", action="store_true", help="a tiny clip, no timing claims (make test runs this)")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds of the rendered clip (default 20)")
    ap.add_argument("--people", type=int, default=6)
    ap.add_argument("--detect-size", type=int, default=640, help="MTCNN's working resolution (0: full frames)")
    ap.add_argument("--detect-every", type=int, default=5, help="run the detector every K-th frame (default 5)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"))
    ap.add_argument("--networks", default=",".join(NETWORKS), help="comma-separated: " + ", ".join(NETWORKS))
    ap.add_argument("--long", type=int, default=10, help="memory check on the clip repeated this often (0: skip)")
    ap.add_argument("--json", default=str(REPO / "build" / "bench" / "video.json"))
    ap.add_argument("--child", metavar="CLIP", help=argparse.SUPPRESS)
    ap.add_argument("--passes", type=int, default=2, help=argparse.SUPPRESS)
    ap.add_argument("--network", help=argparse.SUPPRESS)
    ap.add_argument("--tracks-out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        args.clip = args.child
        child(args)
        return 0

    work = REPO / "build" / "bench" / "video"
    if args.quick:
        args.duration, args.people, args.long = 2.0, 3, 2
        args.networks = "course"
    truth = None
    if args.clip:
        clip = Path(args.clip)
    else:
        size = (320, 240) if args.quick else (1920, 1080)
        clip, truth = crowd_clip(work, width=size[0], height=size[1], duration=args.duration, people=args.people)
    duration, n_frames = clip_duration(clip)
    fps = n_frames / duration
    info = machine()
    info["torch_threads"] = args.threads  # what every measuring child process sets
    print(f"machine: {machine_text(info)}")
    print(f"clip: {clip.name}, {n_frames} frames, {duration:.1f} s; detection every {args.detect_every} frames "
          f"at {args.detect_size or 'full'} px" + ("" if not args.quick else "  (quick mode: no timing claims)"))
    result = {"machine": info, "clip": clip.name, "frames": n_frames, "duration_s": duration,
              "detect_size": args.detect_size, "detect_every": args.detect_every, "quick": args.quick, "networks": {}}
    for name in args.networks.split(","):
        tracks_file = work / f"{clip.stem}.{name}.tracks.json"
        work.mkdir(parents=True, exist_ok=True)
        r = measure(args, clip, name, tracks_file)
        r["frames_per_s"] = r["frames"] / r["seconds"]
        r["real_time_factor"] = duration / r["seconds"]
        r["real_time_factor_first_pass"] = duration / r["seconds_first_pass"]
        if truth is not None:
            r["tracking"] = tracking_scores(truth, tracks_file, fps)
        result["networks"][name] = r
        backbone, size = NETWORKS[name]
        line = (f"{name:>16} ({backbone}, {size} px, {r['precision']}): {r['frames_per_s']:.1f} frames/s, "
                f"real-time factor {r['real_time_factor']:.2f} (first pass, with set-up: "
                f"{r['real_time_factor_first_pass']:.2f}), {r['faces']} faces, peak RSS {r['peak_rss_mib']:.0f} MiB")
        print(line)
        if "tracking" in r:
            t = r["tracking"]
            print(f"{'':>16} tracks: {t['tracks']} for {t['people']} people, coverage {t['coverage']:.3f}, "
                  f"{t['id_switches']} ID switches ({t['switches_per_person_per_minute']:.2f} per person per minute)")
    if args.long > 1:
        name = args.networks.split(",")[0]
        long_clip = repeat_clip(clip, work / f"{clip.stem}.x{args.long}.mp4", args.long)
        r = measure(args, long_clip, name, passes=1)
        short_rss = result["networks"][name]["peak_rss_mib"]
        result["long"] = {"times": args.long, "network": name, "peak_rss_mib": r["peak_rss_mib"],
                          "rss_ratio": r["peak_rss_mib"] / short_rss, "real_time_factor": duration * args.long /
                          r["seconds"]}
        print(f"memory: peak RSS {short_rss:.0f} MiB for the clip, {r['peak_rss_mib']:.0f} MiB for it {args.long}x "
              f"longer: ratio {result['long']['rss_ratio']:.2f}")
    print(f"-> {write_json(args.json, result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

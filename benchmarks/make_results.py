"""Write the generated sections of docs/results.md from the benchmarks' JSON output (``make results``).

Every benchmark script writes its figures as JSON (``--json OUT``, with the machine and the date); the
committed copies live in ``benchmarks/results/NAME.json``.  This script renders each such file into the
block between ``<!-- generated: NAME -->`` and ``<!-- end generated: NAME -->`` of ``docs/results.md``, so a
figure on that page cannot drift from the run that measured it (``tests/test_results_doc.py`` checks it).

Every script has a renderer here (``RENDERERS``) and a block on the page.  Until a script's JSON is
committed its block keeps an older hand-recorded text, which must begin with the line ``HAND_RECORDED``
(or only ``NOT_YET``);
the first ``make results`` after ``make bench`` replaces it with the generated text.  A renderer only
formats numbers that are in the JSON (or plain arithmetic on them, e.g. a difference in points).

Usage::

    python benchmarks/make_results.py            # rewrite docs/results.md
    python benchmarks/make_results.py --check    # exit 1 if docs/results.md is not up to date
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_peers import LABELS as PEER_LABELS  # noqa: E402 - the method names the script prints
from common import machine_text  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
DOC = REPO / "docs" / "results.md"
#: The first line of a block whose script has no committed JSON yet: an older run recorded by hand, or nothing.
HAND_RECORDED = ("*Recorded by hand from an earlier run (no committed JSON yet); `make bench` regenerates this "
                 "block from the script's output.*")
NOT_YET = "*Not measured yet (no committed JSON): `make bench` writes this block.*"


def _row(*cells) -> str:
    """One row of a Markdown table."""
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _yes(ok: bool) -> str:
    return "**yes**" if ok else "**no**"


def _header(script: str, r: dict, what: str) -> str:
    """The first sentence of a block: the script, what it ran, the machine and the date."""
    quick = " **Quick mode: a smoke test, the figures mean nothing.**" if r.get("quick") or \
        r.get("settings", {}).get("quick") else ""
    date = f" Run of {r['date']}." if r.get("date") else ""
    return f"`benchmarks/{script}`: {what} Machine: {machine_text(r['machine'])}.{date}{quick}"


# --- bench_synth ---------------------------------------------------------------------------------------
def render_synth(r: dict) -> str:
    lines = [_header("bench_synth.py", r, f"every default notebook dataset (`NOTEBOOK_DEFAULTS`) drawn with "
                                          f"{r['workers']} worker process{'es' * (r['workers'] != 1)}."), "",
             "| dataset | items asked | files | frames | wall | CPU |", "|---|---|---|---|---|---|"]
    for d in r["datasets"]:
        lines.append(f"| {d['dataset']} | {d['n']} | {d['files']:,} | {d['frames'] or '–'} | {d['wall_s']:.1f} s | "
                     f"{d['cpu_s']:.1f} s |")
    lines.append(f"| all | – | {r['photos']:,} photos + {r['clips']} clips | {r['clip_frames']:,} | "
                 f"**{r['total_wall_s']:.1f} s** | {r['total_cpu_s']:.0f} s |")
    lines += ["", f"Target (issue 3): all of them in at most {r['target_s']:.0f} s: "
                  f"{_yes(r['total_wall_s'] <= r['target_s'])} (CPU seconds / workers: {r['idle_estimate_s']:.1f} s)."]
    return "\n".join(lines) + "\n"


# --- bench_training ------------------------------------------------------------------------------------
def _pairs(pairs) -> str:
    return ", ".join(f"{p['pair']} {p['confusion']:.2f}{'' if p['named'] else ' (not named)'}" for p in pairs)


def _recipe(rec: dict) -> str:
    return (f"{rec.get('backbone', '')} {rec['img_size']} px, epochs {tuple(rec['epochs'])}, batch {rec['batch_size']}"
            f"{', cosine lr' if rec.get('cosine') else ''}").strip()


def render_training(r: dict) -> str:
    c = r["claims"]
    lines = [_header("bench_training.py", r, f"the training claims from random weights (no ImageNet weights "
                                             f"offline); budget {r['budget_images']:,} training images per run."), "",
             "| claim | run | figure | target: reached |", "|---|---|---|---|"]
    if "A" in c:
        a = c["A"]
        seeds = a["seeds"]
        rec = a["recipe"]
        walls = " / ".join(f"{s['wall_s']:.0f}" for s in seeds)
        lines.append(
            f"| A: a small CNN from random weights on the AffectNet-like set, balanced {len(a['classes'])}-class "
            f"validation | `SCRATCH_A`: {rec['backbone']}, {rec['img_size']} px tight crops, batch {rec['batch_size']}, "
            f"{'cosine ' if rec['cosine'] else ''}lr from {rec['lr']:g}, plain cross-entropy, "
            f"{a['train_images'] // max(1, sum(a['epochs'])):,} train crops, {a['epochs'][1]} epochs "
            f"({a['train_images']:,} images seen); seeds {' / '.join(str(s['seed']) for s in seeds)} | "
            f"**{' / '.join(_pct(s['prior_corrected']['balanced_accuracy']) for s in seeds)}** balanced with the "
            f"decision for a balanced set (the training prior divided out) in "
            f"**{walls} s** "
            f"wall; plain argmax {' / '.join(_pct(s['argmax']['balanced_accuracy']) for s in seeds)} | "
            f"55–95%, the three largest confusions named pairs, ≤ 3 min, each seed: {_yes(a['pass'])} |")
        lines.append("| A: the largest confusions (symmetric, row-normalised), balanced decision; plain argmax | – | "
                     + "; ".join(f"seed {s['seed']}: {_pairs(s['prior_corrected']['top_confused_pairs'])}; argmax "
                                 f"{_pairs(s['argmax']['top_confused_pairs'])}" for s in seeds) + " | – |")
    if "C" in c:
        eq2, ce = c["C"]["eq2"], c["C"]["ce"]
        lines.append(f"| C: eq. (2) vs plain cross-entropy, all weights from random init | claim A's recipe, seed 0 | "
                     f"eq. (2) **{_pct(eq2['balanced_accuracy'])}** vs CE **{_pct(ce['balanced_accuracy'])}**, plain "
                     f"argmax | eq. (2) > CE: {_yes(c['C']['pass'])} |")
    if "C_head" in c:
        h = c["C_head"]
        acc = h["balanced_accuracy"]
        lines.append(f"| C (the paper's stage A alone): a new emotion head on the frozen backbone of claim A's CE "
                     f"network, SAM around Adam | {h['epochs']} epochs, seeds {', '.join(map(str, h['seeds']))} | "
                     f"eq. (2) {' / '.join(_pct(x) for x in acc['eq2'])} (mean **{_pct(h['mean_eq2'])}**) vs CE "
                     f"{' / '.join(_pct(x) for x in acc['ce'])} (mean **{_pct(h['mean_ce'])}**) | eq. (2) > CE for "
                     f"each seed: {_yes(h['pass'])} ({h['eq2_wins']} of {len(h['seeds'])}) |")
    if "B" in c:
        b = c["B"]
        for key, name in (("recommended", "the recommended recipe"), ("notebook_default", "the notebook recipe"),
                          ("fast", "`IDENTITY_FAST` (the course's backbone)")):
            if key in b:
                x = b[key]
                target = f"≥ 80% in ≤ 3 min: {_yes(b['pass'])}" if key == "recommended" and "pass" in b else "–"
                lines.append(f"| B: identity pre-training, LFW protocol on unseen people ({name}) | {_recipe(x)}; "
                             f"{x['train_people']} people, {x['train_photos']:,} photos | **{_pct(x['lfw_accuracy'])} ± "
                             f"{_pct(x['lfw_std'])}** in {x['wall_s']:.0f} s wall ({x['cpu_s']:.0f} s CPU) | {target} |")
    if "D" in c:
        d = c["D"]
        lines.append(_row(f"D: age expectation of eq. (1) vs argmax age (attribute heads on the frozen identity "
                          f"backbone, UTKFace-like, {d['test_images']} held-out faces)", f"top-L = {d['top_l']}",
                          f"MAE **{d['age_mae_eq1']:.2f}** vs {d['age_mae_argmax']:.2f} years; gender "
                          f"{_pct(d['gender_accuracy'])}, race balanced {_pct(d['race_balanced_accuracy'])}",
                          f"eq. (1) lower: {_yes(d['pass'])}"))
    if "E" in c:
        e, balanced = c["E"], {k: _pct(v["balanced_accuracy"]) for k, v in c["E"].items() if isinstance(v, dict)}
        lines.append(_row("E: fine-tuning the identity network for emotion vs a linear head on its frozen features",
                          "eq. (2)", f"fine-tuned **{balanced['fine_tuned']}** vs linear head "
                          f"{balanced['linear_head']} balanced", f"fine-tuning higher: {_yes(e['pass'])}"))
    return "\n".join(lines) + "\n"


# --- bench_descriptors ---------------------------------------------------------------------------------
STATS = "mean+max+min+std (paper)"


def render_descriptors(r: dict) -> str:
    lines = [_header("bench_descriptors.py", r, f"every clip of a {r['afew_clips']}-clip AFEW-like set and a "
                                                f"{r['vgaf_clips']}-clip VGAF-like set, {r['splits']} stratified "
                                                f"2/3 : 1/3 splits, LinearSVC; per-frame features of {r['model']}, "
                                                f"one frame in {r['every']}; a face was found in "
                                                f"{_pct(r['face_rate'])} of the sampled frames."), "",
             "| descriptor | accuracy, mean ± std over splits | the paper's statistics better in |",
             "|---|---|---|"]
    afew = r["afew"]
    for name in sorted((k for k in afew if "std" in afew[k]), key=lambda k: k != STATS):  # the paper's first
        v = afew[name]
        key = f"stats_minus_{name.replace(' ', '_')}"
        better = (f"{100 * afew[key]['wins']:.0f}% of splits ({100 * afew[key]['mean']:+.1f} points on average)"
                  if key in afew else "–")
        acc = f"**{_pct(v['mean'])} ± {_pct(v['std'])}**" if name == STATS else f"{_pct(v['mean'])} ± {_pct(v['std'])}"
        lines.append(f"| AFEW-like (7 emotions): {name} | {acc} | {better} |")
    for name, v in r["vgaf"].items():
        lines.append(f"| VGAF-like (3 classes): {name} | {_pct(v['mean'])} ± {_pct(v['std'])} | – |")
    return "\n".join(lines) + "\n"


# --- bench_analyze -------------------------------------------------------------------------------------
def render_analyze(r: dict) -> str:
    t = r["targets"]
    lines = [_header("bench_analyze.py", r, f"{r['faces']} face-world faces at their known boxes, the same random "
                                            f"network for every method; medians of {r['repeats']} round-robin "
                                            f"repeats."), "",
             "| backbone, size | naive per-face loop | facelab fp32 | facelab default | ONNX Runtime |",
             "|---|---|---|---|---|"]
    for b in r["backbones"]:
        name = f"{b['backbone']}, {b['size']} px"
        if "crop_network" in b:
            cn = b["crop_network"]
            cells = [f"{cn['naive']['faces_per_s']:.1f} faces/s"] + [
                f"{cn[k]['faces_per_s']:.1f} ({cn[k]['ratio_to_naive']:.1f}x)" if k in cn else "–"
                for k in ("fp32", "default", "onnx")]
            lines.append(f"| {name}, crop + network | " + " | ".join(cells) + " |")
        no = b["network_only"]
        cells = ["–"] + [f"{no[k]['img_per_s']:.1f} img/s = {_pct(no[k]['fraction_of_gemm'])} of {no[k]['gemm']} GEMM"
                         if k in no else "–" for k in ("fp32", "default", "onnx")]
        lines.append(f"| {name}, network only, batch {r['batch']} ({b['precision']} default) | " + " | ".join(cells) + " |")
        if "end_to_end" in b:
            e = b["end_to_end"]
            lines.append(f"| {name}, end to end with MTCNN | {e['naive']['faces_per_s']:.1f} faces/s | – | "
                         f"{e['facelab']['faces_per_s']:.1f} ({e['facelab']['ratio_to_naive']:.1f}x) | – |")
    g = r["gemm_alone_gflop_per_s"]
    lines += ["", f"GEMM measured alone: fp32 {g['fp32']:.0f}, bf16 {g['bf16']:.0f} GFLOP/s. Targets:"]
    by_name = {b["backbone"]: b for b in r["backbones"]}
    eff, mob = by_name.get("efficientnet_b0"), by_name.get("mobilenetv1_100")
    if eff and "crop_network" in eff:
        ratio = eff["crop_network"]["default"]["ratio_to_naive"]
        lines.append(f"- facelab default ≥ {t['efficientnet_b0_default_ratio_to_naive']:g}x the naive loop on "
                     f"efficientnet_b0 (crop + network): {ratio:.1f}x, {_yes(ratio >= t['efficientnet_b0_default_ratio_to_naive'])};")
    for b, key in ((mob, "mobilenetv1_100_fraction_of_bf16_bound"), (eff, "efficientnet_b0_fraction_of_bf16_bound")):
        if b:
            frac = b["default_fraction_of_bf16_bound"]
            lo, hi = b["default_fraction_rounds"]
            lines.append(f"- {b['backbone']}, network only, ≥ {100 * t[key]:.0f}% of the bf16-GEMM bound: "
                         f"{_pct(frac)} (round by round {_pct(lo)}–{_pct(hi)}), {_yes(frac >= t[key])};")
    lines[-1] = lines[-1][:-1] + "."
    return "\n".join(lines) + "\n"


# --- bench_peers ---------------------------------------------------------------------------------------
def render_peers(r: dict) -> str:
    c, net, m = r["crops"], r["network"], r["machine"]
    label = {k: v.format(L=c["list_size"], P=m["default_precision"]) for k, v in PEER_LABELS.items()}
    lines = [_header("bench_peers.py", r, f"facelab against {r['peer']['package']} (the paper author's library), "
                                          f"the same network ({net['architecture']}, {net['input']} px, 8 emotions, "
                                          f"random backbone, fitted classifier) on the same faces; medians of "
                                          f"{r['settings']['repeats']} round-robin repeats."), "",
             f"Recognizers on the same {c['faces']} face-world crops of {c['crop_size']} px; agreement with "
             f"{label[c['reference']]} (fp32, the publisher's own path):", "",
             "| method | faces/s [min–max] | ratio to EmotiEffLib's fastest | same class (on the faces the reference "
             "decides: its two best classes further apart than the tolerance) | max \\|Δp\\| (tolerance) |",
             "|---|---|---|---|---|"]
    for key, rate in c["rates"].items():
        a = c["agreement"].get(key)
        agree = (f"{_pct(a['class_agreement'])} ({_pct(a['class_agreement_decided'])} of the {a['decided_faces']} "
                 f"decided) | {a['max_abs_prob_diff']:.4f} ({a['tolerance']})" if a else "reference | –")
        mark = " (fastest)" if key == c["peer_fastest"] else ""
        lines.append(f"| {label[key]}{mark} | {rate['per_s']:.1f} [{rate['per_s_min']:.1f}–{rate['per_s_max']:.1f}] | "
                     f"{rate['ratio_to_peer_fastest']:.2f}x | {agree} |")
    p = r["photos"]
    pr = p["rates"]
    lines += ["", f"End to end on {p['photos']} face-world photos of {p['size'][0]} x {p['size'][1]} px with "
                  f"{p['true_faces']} faces: the publisher's pipeline (MTCNN per photo + {r['settings']['peer_e2e']}) "
                  f"{pr['publisher']['per_s']:.2f} photos/s, recall {_pct(p['recall']['publisher'])}; facelab "
                  f"`FaceAnalyzer.analyze` ({p['facelab_precision']}) {pr['facelab']['per_s']:.2f} photos/s, recall "
                  f"{_pct(p['recall']['facelab'])}: **{pr['facelab']['ratio_to_publisher']:.2f}x**; the same class on "
                  f"{_pct(p['class_agreement_on_shared_faces'])} of the {p['faces_found_by_both']} faces both found."]
    d = r["detection"]
    if "facelab_detect_size" in d:
        full, small = d["mtcnn_full"], d["facelab_detect_size"]
        lines += ["", f"Detection alone on {d['frames']} frames of {d['size'][0]} x {d['size'][1]} with "
                      f"{d['true_faces_40px']} faces ≥ 40 px: facenet-pytorch MTCNN on the full frame "
                      f"{full['per_s']:.2f} frames/s, recall {_pct(full['recall_40px'])}, {full['false_detections']} "
                      f"false; facelab `detect_faces(detect_size={d['detect_size']})` {small['per_s']:.2f} frames/s "
                      f"(**{small['ratio_to_full']:.2f}x**), recall {_pct(small['recall_40px'])}, "
                      f"{small['false_detections']} false."]
    return "\n".join(lines) + "\n"


# --- bench_video and bench_notebooks -------------------------------------------------------------------
def render_video(r: dict) -> str:
    lines = [f"`benchmarks/bench_video.py`: {r['clip']}, {r['frames']} frames ({r['duration_s']:.0f} s, 1080p "
             f"face-world crowd: people walk, turn, cross, hide each other, leave and come back); MTCNN at "
             f"{r['detect_size']} px every {r['detect_every']} frames, the network on every face of every frame. "
             f"Machine: {machine_text(r['machine'])}. Networks with random weights (speed does not depend on them).", "",
             "| network | frames/s | real-time factor (first pass, with set-up) | faces | peak RSS | tracks | "
             "coverage | ID switches per person per minute |", "|---|---|---|---|---|---|---|---|"]
    for name, n in r["networks"].items():
        t = n.get("tracking")
        tracking = (f"{t['tracks']} for {t['people']} people | {_pct(t['coverage'])} | "
                    f"{t['switches_per_person_per_minute']:.2f}") if t else "– | – | –"
        lines.append(f"| {name} ({n['precision']}) | {n['frames_per_s']:.1f} | **{n['real_time_factor']:.2f}** "
                     f"({n['real_time_factor_first_pass']:.2f}) | {n['faces']} | {n['peak_rss_mib']:.0f} MiB | "
                     f"{tracking} |")
    if "long" in r:
        g = r["long"]
        lines += ["", f"Memory: the same clip {g['times']}x longer (its packets repeated) peaks at "
                      f"{g['peak_rss_mib']:.0f} MiB with the {g['network']} network: **{g['rss_ratio']:.2f}x** the "
                      f"short clip's peak (real-time factor {g['real_time_factor']:.2f})."]
    return "\n".join(lines) + "\n"


def render_notebooks(r: dict) -> str:
    start = "empty caches (every notebook trains or draws what it needs)" if r["caches_empty_at_start"] else \
        "caches filled by an earlier run"
    lines = [f"`benchmarks/bench_notebooks.py`: the series executed in order, each notebook in a fresh kernel, "
             f"from {start}. Machine: {machine_text(r['machine'])}.", "",
             f"| notebook | wall | kernel CPU | within {r['budget_s'] // 60} min |", "|---|---|---|---|"]
    for n in r["notebooks"]:
        lines.append(f"| {n['notebook']} | {n['wall_s']:.0f} s | {n['kernel_cpu_s']:.0f} s | "
                     f"{'yes' if n['wall_s'] <= r['budget_s'] else '**no**'} |")
    within = "yes" if r["total_wall_s"] <= r["series_budget_s"] else "**no**"
    lines.append(f"| the series | **{r['total_wall_s'] / 60:.1f} min** | – | within "
                 f"{r['series_budget_s'] // 60} min: {within} |")
    return "\n".join(lines) + "\n"


#: One renderer per benchmark script (``bench_NAME.py`` -> ``benchmarks/results/NAME.json`` -> block NAME).
RENDERERS = {"synth": render_synth, "training": render_training, "descriptors": render_descriptors,
             "analyze": render_analyze, "peers": render_peers, "video": render_video, "notebooks": render_notebooks}


def render_all() -> dict[str, str]:
    return {name: fn(json.loads((RESULTS / f"{name}.json").read_text(encoding="utf-8")))
            for name, fn in RENDERERS.items() if (RESULTS / f"{name}.json").is_file()}


def updated(text: str, blocks: dict[str, str]) -> str:
    """``text`` with every renderer's block replaced by its rendering (``blocks``); a block whose script has
    no JSON keeps its text, which must say so in its first line (``HAND_RECORDED`` or ``NOT_YET``)."""
    for name in RENDERERS:
        start, end = f"<!-- generated: {name} -->\n", f"<!-- end generated: {name} -->"
        if start not in text or end not in text:
            raise SystemExit(f"docs/results.md has no '{start.strip()}' ... '{end}' block for bench_{name}.py")
        head, rest = text.split(start, 1)
        old, tail = rest.split(end, 1)
        if name in blocks:
            body = blocks[name]
        elif old.startswith((HAND_RECORDED, NOT_YET)):
            body = old
        else:
            raise SystemExit(f"docs/results.md: block '{name}' has no benchmarks/results/{name}.json and does not "
                             f"begin with the hand-recorded note:\n{HAND_RECORDED}\nor\n{NOT_YET}")
        text = head + start + body + end + tail
    return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="render docs/results.md from benchmarks/results/*.json")
    ap.add_argument("--check", action="store_true", help="only check that docs/results.md is up to date")
    args = ap.parse_args(argv)
    text = DOC.read_text(encoding="utf-8")
    new = updated(text, render_all())
    if args.check:
        if new != text:
            print("docs/results.md is not what benchmarks/results/*.json give: run make results", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(new, encoding="utf-8")
    print(f"wrote {DOC.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

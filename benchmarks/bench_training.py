"""Training claims of issues 3 and 4, measured on the built-in face world (README figures).

From random weights (no ImageNet weights can be downloaded here), mobilenetv1_100 at 64 px,
tight MTCNN crops (``facelab.data.prepare``) of the notebook-sized datasets:

A. issue 3 -- a small CNN trained from scratch for <= 3 min on 2 cores on the AffectNet-like
   set reaches 55-95 % on its *balanced* validation set; the largest confusions are between
   fear/surprise, anger/disgust, contempt/neutral/happiness.  Recipe ``SCRATCH_A``
   (mobilenetv4_conv_small, 48 px, plain cross-entropy), timed in wall seconds: run it with
   ``--threads 2`` on a quiet machine.  The network is trained on AffectNet's imbalanced
   classes and judged on a balanced set, so its decisions there divide out the training
   prior (the Bayes correction, :func:`facelab.metrics.prior_corrected_accuracy`); the claim is judged on
   those decisions, and the plain argmax figures are printed beside them.  Trained with
   three seeds (0, 1, 2); the claim holds only if it holds for each.
B. issue 4 -- identity pre-training in <= 3 min reaches >= 80 % on the LFW protocol
   (Table 1: 1 gallery photo per person, nearest neighbour, mean of 10 splits) over people
   it never saw.  Also measured: the notebook recipe (``facelab.training.course`` defaults).
C. issue 4 -- eq. (2) (class-weighted cross-entropy) gives a higher balanced validation
   accuracy than plain cross-entropy (same seed, same recipe ``SCRATCH_A``, from scratch).
   ``C_head``: the same comparison for the paper's stage A only -- a new emotion head on the
   frozen backbone of claim A's network, eq. (2) vs plain CE, three seeds.
D. issue 4 -- the age expectation of eq. (1) gives a lower MAE than the argmax age
   (attribute heads on the frozen identity backbone of B, UTKFace-like set, held-out 20 %).
E. issue 4 -- fine-tuning all weights of the identity network of B for emotion beats a
   linear head on its frozen features.

**Budget.**  "3 minutes on 2 cores" is turned into a fixed number of training images
(``--budget``, default 30,000): mobilenetv1_100 trains at about 170 img/s at 64 px on the
2 idle cores (measured in the project's first session), so 3 min ~ 30,000 images.  Wall-clock time on a shared machine
says nothing, so every run prints its images, CPU seconds and wall seconds; an image seen
by a SAM step counts twice (two forward/backward passes).  Stage A on a frozen backbone
costs one forward pass per image (features cached) and is reported in CPU seconds.

    OMP_NUM_THREADS=1 python benchmarks/bench_training.py [--quick] [--threads 1]
        [--budget 30000] [--claims ABCDE] [--json build/bench/training.json]

``--quick`` runs everything on tiny datasets with a tiny budget (a smoke test: the figures
mean nothing).  Datasets and crops are cached (``ensure_dataset`` / ``data/cache/crops``).
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
from pathlib import Path

if __name__ == "__main__":  # before torch starts its thread pool
    for _i, _a in enumerate(sys.argv):
        if _a == "--threads" and _i + 1 < len(sys.argv):
            os.environ["OMP_NUM_THREADS"] = sys.argv[_i + 1]
        elif _a.startswith("--threads="):
            os.environ["OMP_NUM_THREADS"] = _a.split("=", 1)[1]
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch

from facelab.apps import viz
from facelab.data.datasets import read_affectnet, read_lfw, read_utkface, read_vggface2
from facelab.data.tensors import preload
from facelab.models import MultiTaskNet
from facelab.synth.writers import NOTEBOOK_DEFAULTS
from facelab.training.course import face_crops, utkface_split
from facelab.training.evaluate import emotion_metrics, evaluate_attributes, evaluate_identity, log_prior, predict
from facelab.training.train import train_attributes, train_emotion, train_identity

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Timer, load_average, machine, write_json  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BACKBONE = "mobilenetv1_100"
IMG_SIZE = 64
IDLE_RATE = 170.0  # img/s, mobilenetv1_100 training at 64 px on 2 idle cores (measured in the project's first session)
NAMED_PAIRS = {frozenset(p) for p in [("Fear", "Surprise"), ("Anger", "Disgust"), ("Contempt", "Neutral"),
                                      ("Contempt", "Happiness"), ("Neutral", "Happiness")]}

#: Identity training data: "notebook" = NOTEBOOK_DEFAULTS (100 people x 20 photos); the
#: recommended recipe uses more people with fewer photos each.
IDENTITY_DATA = {"notebook": {"n": NOTEBOOK_DEFAULTS["vggface2"]["n"]},
                 "many": {"n": 1000, "images_per_person": 6}}
QUICK_DATA = {"vggface2": {"n": 12, "images_per_person": 4}, "lfw": {"n": 12},
              "utkface": {"n": 60}, "affectnet": {"n": 64, "n_val_per_class": 4}}


# =====================================================================================
# Data: built-in datasets -> tight MTCNN crops at 64 px (cached), preloaded
# =====================================================================================
def tight_crops(name: str, size: int = IMG_SIZE, **data_kw) -> Path:
    """``ensure_dataset(name, **data_kw)`` cropped once with the paper's tight crop and MTCNN's
    smallest face 20 px (``course.face_crops``; photos without a face are listed in ``failures.csv``)."""
    return face_crops(name, "tight", size, data_kw=data_kw, progress=False, min_face_size=20)


def load_data(quick: bool, claims: str = "ABCDE") -> dict:
    """The datasets claims B, D and E need, preloaded at IMG_SIZE (claims A and C load their
    own, :func:`scratch_emotion_data`)."""
    q = QUICK_DATA if quick else {}
    claims = set(claims)
    identity_sets = ("notebook", "many") if "B" in claims else ("many",) if claims & set("DE") else ()
    data = {}
    with Timer() as t:
        for key in identity_sets:
            kw = q.get("vggface2") or IDENTITY_DATA[key]
            data[f"vgg_{key}"] = preload(read_vggface2(tight_crops("vggface2", **kw), "train"), IMG_SIZE, progress=False)
        if identity_sets:
            data["lfw"] = preload(read_lfw(tight_crops("lfw", **q.get("lfw", {}))), IMG_SIZE, progress=False)
        if "E" in claims:
            aff = tight_crops("affectnet", **q.get("affectnet", {}))
            data["aff_train"] = preload(read_affectnet(aff, "train"), IMG_SIZE, progress=False)
            data["aff_val"] = preload(read_affectnet(aff, "val"), IMG_SIZE, progress=False)
        if "D" in claims:
            utk_train, utk_test = utkface_split(read_utkface(tight_crops("utkface", **q.get("utkface", {}))))
            data["utk_train"] = preload(utk_train, IMG_SIZE, progress=False)
            data["utk_test"] = preload(utk_test, IMG_SIZE, progress=False)
    if data:
        sizes = {k: len(v) for k, v in data.items()}
        print(f"data (tight crops {IMG_SIZE}px): {sizes}  [{t.wall:.0f} s wall, {t.cpu:.0f} s CPU]", flush=True)
    return data


def epochs_for(budget: int, n_images: int, sam: bool = False) -> int:
    """Whole epochs over ``n_images`` that fit the image budget (a SAM step counts twice)."""
    return max(1, int(round(budget / (n_images * (2 if sam else 1)))))


# =====================================================================================
# Metrics
# =====================================================================================
def confused_pairs(matrix, classes, k=3):
    """:func:`facelab.apps.viz.confused_pairs` as JSON rows, each flagged when it is a pair the
    paper names."""
    table = viz.confused_pairs(matrix, classes, k=k)
    return [{"pair": row.pair, "confusion": round(float(row.confusion), 3),
             "named": frozenset((row.a, row.b)) in NAMED_PAIRS} for row in table.itertuples()]


def run_record(history, timer, images) -> dict:
    return {"train_images": int(images), "cpu_s": round(timer.cpu, 1), "wall_s": round(timer.wall, 1),
            "idle_2core_estimate_s": round(images / IDLE_RATE, 1),
            "epochs_run": int(len(history)) if history is not None else 0}


def backbone_images(history) -> int:
    """Training images through the backbone (stage B; SAM steps counted twice)."""
    if history is None or not len(history):
        return 0
    rows = history[history["stage"] != "A"] if "stage" in history else history
    return int(rows["images"].sum()) if "images" in rows else 0


# =====================================================================================
# The runs
# =====================================================================================
def train_identity_run(train, lfw, *, epochs, lr, sam=(True, False), batch_size=64, seed=0, label="",
                       backbone=BACKBONE, img_size=IMG_SIZE, cosine=False):
    """Identity pre-training from random weights, then the LFW protocol on unseen people."""
    torch.manual_seed(seed)
    model = MultiTaskNet(backbone, pretrained=False)
    with Timer() as t:
        history = train_identity(model, train, epochs=tuple(epochs), lr=tuple(lr), sam=tuple(sam), img_size=img_size,
                                 batch_size=batch_size, seed=seed, progress=False, cosine=cosine)
    lfw_result = evaluate_identity(model, lfw, img_size=img_size)
    images = backbone_images(history) * (2 if sam[1] else 1)
    record = {"label": label, "backbone": backbone, "img_size": img_size, "cosine": cosine,
              "train_people": len(train.label_names.get("identity") or []) or int(train.labels["identity"].max()) + 1, "train_photos": len(train), "epochs": list(epochs),
              "lr": list(lr), "sam": list(sam), "batch_size": batch_size,
              "lfw_accuracy": round(lfw_result["accuracy"], 4), "lfw_std": round(lfw_result["std"], 4),
              "lfw_people": lfw_result["n_people"], "lfw_probes": lfw_result["n_probes"],
              "final_train_acc": round(float(history["train_acc"].iloc[-1]), 4) if len(history) else None,
              **run_record(history, t, images)}
    print(f"  identity {label}: LFW {record['lfw_accuracy']:.1%} +- {record['lfw_std']:.1%} "
          f"({record['train_people']} people x {len(train) / max(record['train_people'], 1):.1f} photos, "
          f"{backbone} {img_size} px, epochs {tuple(epochs)}, lr {tuple(lr)}{' cosine' if cosine else ''}, "
          f"batch {batch_size}, sam {tuple(sam)}, {images} img, {t.cpu:.0f} s CPU, "
          f"{t.wall:.0f} s wall)", flush=True)
    return model, record


def train_emotion_run(model, train, val, *, weighted=True, epochs, lr, sam=(True, False), batch_size=64, seed=0,
                      label="", img_size=IMG_SIZE, cosine=False):
    """Emotion training (from whatever ``model`` holds), then balanced accuracy on val: by
    argmax, and after :func:`facelab.metrics.prior_corrected_accuracy` (one pass of the network over val)."""
    with Timer() as t:
        history = train_emotion(model, train, weighted=weighted, epochs=tuple(epochs), lr=tuple(lr), sam=tuple(sam),
                                img_size=img_size, batch_size=batch_size, seed=seed, progress=False, cosine=cosine)
    p = predict(model, val, img_size=img_size)
    logits, y = p["logits"]["emotion"], p["labels"]["emotion"]
    m = emotion_metrics(logits, y, model.label_names["emotion"], val.label_names.get("emotion"))
    counts = np.bincount(np.asarray(train.labels["emotion"]), minlength=logits.shape[1])
    corrected = emotion_metrics(np.asarray(logits) - log_prior(counts), y, model.label_names["emotion"],
                                val.label_names.get("emotion"))
    images = backbone_images(history) * (2 if sam[1] else 1)
    classes = m["classes"]
    cm = np.asarray(m["confusion_matrix"])
    recall = cm.diagonal() / np.maximum(cm.sum(axis=1), 1)
    cm_pc = np.asarray(corrected["confusion_matrix"])
    record = {"label": label, "weighted": weighted, "epochs": list(epochs), "lr": list(lr), "sam": list(sam),
              "batch_size": batch_size, "img_size": img_size, "cosine": cosine,
              "balanced_accuracy": round(m["balanced_accuracy"], 4),
              "prior_corrected_balanced_accuracy": round(corrected["balanced_accuracy"], 4),
              "accuracy": round(m["accuracy"], 4), "val_images": m["n"], "train_images": len(train),
              "recall": {c: round(float(r), 3) for c, r in zip(classes, recall)},
              "confusion_matrix": cm.tolist(), "classes": classes,
              "top_confused_pairs": confused_pairs(cm, classes, k=3), "torch_threads": torch.get_num_threads(),
              "prior_corrected": {"balanced_accuracy": round(corrected["balanced_accuracy"], 4),  # same figure
                                  "recall": {c: round(float(r), 3) for c, r in
                                             zip(classes, cm_pc.diagonal() / np.maximum(cm_pc.sum(axis=1), 1))},
                                  "confusion_matrix": cm_pc.tolist(),
                                  "top_confused_pairs": confused_pairs(cm_pc, classes, k=3)},
              **run_record(history, t, images)}
    print(f"  emotion {label}: balanced val acc {record['balanced_accuracy']:.1%} (prior-corrected "
          f"{record['prior_corrected_balanced_accuracy']:.1%}, acc {record['accuracy']:.1%}, {img_size} px, "
          f"epochs {tuple(epochs)}, lr {tuple(lr)}{' cosine' if cosine else ''}, "
          f"{'eq. (2)' if weighted else 'plain CE'}, {images} img, {t.cpu:.0f} s CPU, {t.wall:.0f} s wall, "
          f"{torch.get_num_threads()} threads)", flush=True)
    return record


def course_identity_defaults() -> dict:
    """The notebook recipe's identity settings (facelab.training.course.identity_model defaults)."""
    import inspect

    defaults = {"epochs": (1, 6), "lr": (1e-3, 1e-4), "batch_size": 64}
    try:
        from facelab.training import course

        params = inspect.signature(course.identity_model).parameters
        for key in defaults:
            if key in params and params[key].default not in (inspect.Parameter.empty, None):
                defaults[key] = params[key].default
        if "lr" in params and params["lr"].default is None:  # lr=None: the from-scratch default
            defaults["lr"] = course.IDENTITY_LR
    except Exception as exc:  # course.py is optional for this benchmark
        print(f"  (facelab.training.course unavailable: {exc}; using {defaults})")
    return {"epochs": tuple(defaults["epochs"]), "lr": tuple(defaults["lr"]), "batch_size": int(defaults["batch_size"])}


#: Claims A and C: the fastest-learning from-scratch emotion recipe measured on 2 cores
#: (``--threads 2``): about 90 s wall for 16 epochs on the 2-core AMD EPYC of the README
#: figures.  (The earlier 2-core Intel machine took 170-197 s for 11 epochs.  Tried on
#: format 2: 40, 48 and 64 px, batch 64 / 128 / 256, constant vs cosine lr, with and without
#: augmentation; augmentation and 64 px learn too slowly for a 3-minute budget.)
SCRATCH_A = {"backbone": "mobilenetv4_conv_small", "img_size": 48, "epochs": 16, "lr": 2e-3, "batch_size": 128,
             "cosine": True, "affectnet_n": 8000}


def scratch_emotion_data(quick: bool = False):
    """Claim A's data: the AffectNet-like tight crops (``course.face_crops("affectnet",
    data_kw={"n": 8000})``, 7,937 train crops) at ``SCRATCH_A``'s image size, preloaded."""
    from facelab.training import course

    r = SCRATCH_A
    crops = course.face_crops("affectnet", data_kw=QUICK_DATA["affectnet"] if quick else {"n": r["affectnet_n"]},
                              progress=False)
    return (preload(read_affectnet(crops, "train"), r["img_size"], progress=False),
            preload(read_affectnet(crops, "val"), r["img_size"], progress=False))


def scratch_emotion_network(train, val, weighted: bool = False, seed: int = 0, quick: bool = False):
    """Claim A's network: ``SCRATCH_A`` from random weights on :func:`scratch_emotion_data`,
    plain cross-entropy or eq. (2).  Returns ``(model, record)`` (see :func:`train_emotion_run`)."""
    r = SCRATCH_A
    torch.manual_seed(seed)
    model = MultiTaskNet(r["backbone"], pretrained=False, emotion_classes=8)
    record = train_emotion_run(model, train, val, weighted=weighted, epochs=(0, 1 if quick else r["epochs"]),
                               lr=(1e-3, r["lr"]), sam=(False, False), batch_size=r["batch_size"], seed=seed,
                               img_size=r["img_size"], cosine=r["cosine"],
                               label=f"from scratch, {r['backbone']}")
    return model, {"recipe": r, **record}


def scratch_claim_holds(record) -> bool:
    """Claim A for one run, judged on the network's decisions for the balanced validation set
    (the prior-corrected argmax, :func:`facelab.metrics.prior_corrected_accuracy`): 55-95 % balanced accuracy,
    the 3 largest confusions all named pairs, <= 180 s of training (wall)."""
    pc = record["prior_corrected"]
    return bool(0.55 <= pc["balanced_accuracy"] <= 0.95 and record["wall_s"] <= 180
                and all(p["named"] for p in pc["top_confused_pairs"]))


def seed_summary(seed: int, record, holds: bool) -> dict:
    return {"seed": seed, "wall_s": record["wall_s"], "pass": holds,
            "prior_corrected": {k: record["prior_corrected"][k] for k in ("balanced_accuracy", "top_confused_pairs")},
            "argmax": {"balanced_accuracy": record["balanced_accuracy"],
                       "top_confused_pairs": record["top_confused_pairs"]}}


def pairs_text(pairs) -> str:
    return ", ".join(f"{p['pair']} {p['confusion']:.2f}{'' if p['named'] else ' (not named)'}" for p in pairs)


def head_loss_comparison(model, train, val, seeds=(0, 1, 2), epochs: int = 20) -> dict:
    """Claim C with the backbone held fixed: the paper's stage A (a new emotion head on the
    frozen backbone of ``model``, SAM around Adam, lr 1e-3, ``epochs`` epochs) trained with
    eq. (2) and with plain cross-entropy, for each seed.  Only the loss differs between the
    two runs of a seed."""
    runs = {"eq2": [], "ce": []}
    for seed in seeds:
        for weighted in (True, False):
            rec = train_emotion_run(copy.deepcopy(model), train, val, weighted=weighted, epochs=(epochs, 0),
                                    lr=(1e-3, 1e-3), sam=(True, False), seed=seed, img_size=SCRATCH_A["img_size"],
                                    label=f"head on the frozen backbone, seed {seed}")
            runs["eq2" if weighted else "ce"].append(rec["balanced_accuracy"])
    wins = sum(w > c for w, c in zip(runs["eq2"], runs["ce"]))
    return {"seeds": list(seeds), "epochs": epochs, "balanced_accuracy": runs, "eq2_wins": wins,
            "mean_eq2": round(float(np.mean(runs["eq2"])), 4), "mean_ce": round(float(np.mean(runs["ce"])), 4)}


#: The recommended from-scratch identity recipe (what reaches the issue-4 target; see notes).
IDENTITY_RECIPE = {"epochs_a": 0, "lr": (1e-3, 2e-3), "sam": (False, False), "batch_size": 64}
#: Claim B, the best identity recipe measured within about 3 minutes on 2 cores (run with
#: ``--threads 2``): the course's backbone at 48 px, batch 128, cosine lr, on 1000 people x 6
#: photos.  (2000 x 3 and 400 x 10 photos did worse: 52.6% and 68.8%.)
IDENTITY_FAST = {"backbone": "mobilenetv4_conv_small", "img_size": 48, "epochs": 13, "lr": (1e-3, 2e-3),
                 "batch_size": 128, "cosine": True}
#: Fine-tuning the identity network for emotion (claim E) and the linear-head baseline.
FINETUNE_EMOTION = {"epochs_a": 2, "lr": (1e-3, 1e-3), "sam": (True, False), "batch_size": 64}
LINEAR_HEAD_EPOCHS = 20


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny datasets and budget: a smoke test")
    ap.add_argument("--budget", type=int, default=None, help="training images per run (default 30000, quick 256)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: OMP_NUM_THREADS or 1)")
    ap.add_argument("--claims", default="ABCDE", help="which claims to run (default ABCDE)")
    ap.add_argument("--fast-epochs", type=int, default=IDENTITY_FAST["epochs"],
                    help=f"epochs of claim B's IDENTITY_FAST run (default {IDENTITY_FAST['epochs']})")
    ap.add_argument("--json", default=str(REPO / "build" / "bench" / "training.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads or int(os.environ.get("OMP_NUM_THREADS", "1")))
    budget = args.budget or (256 if args.quick else 30_000)
    claims = set(args.claims.upper())
    info = machine()
    print(f"machine: {info['cpu']['model']}, {info['cpu']['logical_cores']} cores, torch {info['versions']['torch']} "
          f"with {info['torch_threads']} thread(s), load average {info['load_average'][0]:.1f}")
    print(f"budget: {budget} training images per run (~{budget / IDLE_RATE:.0f} s at {IDLE_RATE:.0f} img/s on "
          f"2 idle cores); backbone {BACKBONE}, {IMG_SIZE} px, random init" + (" [QUICK: figures mean nothing]"
                                                                                   if args.quick else ""))
    result = {"machine": info, "budget_images": budget, "quick": args.quick, "backbone": BACKBONE,
              "img_size": IMG_SIZE, "claims": {}}
    need_identity = bool(claims & set("BDE"))
    data = load_data(args.quick, "".join(sorted(claims)))
    verdicts = {}

    if claims & {"A", "C"}:
        print("A/C: emotion from scratch on the AffectNet-like set (imbalanced train, balanced val)")
        runs, models = {}, {}
        aff_train, aff_val = scratch_emotion_data(args.quick)
        for weighted in ([False, True] if "C" in claims else [False]):
            models[weighted], runs[weighted] = scratch_emotion_network(aff_train, aff_val, weighted=weighted,
                                                                       quick=args.quick)
        # claim A: seed 0 (the network claims C and C_head reuse), then two more training seeds
        seed_runs = [runs[False]] + [scratch_emotion_network(aff_train, aff_val, seed=seed, quick=args.quick)[1]
                                     for seed in ((1, 2) if "A" in claims and not args.quick else ())]
        checks = [scratch_claim_holds(r) for r in seed_runs]
        ok = all(checks)
        a = runs[False]
        named = sum(p["named"] for p in a["prior_corrected"]["top_confused_pairs"])
        result["claims"]["A"] = {**a, "named_pairs_in_top3": named, "pass": ok,
                                 "seeds": [seed_summary(seed, r, c)
                                           for seed, (r, c) in enumerate(zip(seed_runs, checks))]}
        verdicts["A"] = (ok, "prior-corrected decisions (targets: 55-95% balanced, the three largest "
                             "confusions all named pairs, <= 180 s):" + "".join(
            f"\n           seed {seed}: {r['prior_corrected']['balanced_accuracy']:.1%} in {r['wall_s']:.0f} s, "
            f"{pairs_text(r['prior_corrected']['top_confused_pairs'])}; plain argmax {r['balanced_accuracy']:.1%}, "
            f"{pairs_text(r['top_confused_pairs'])}" for seed, r in enumerate(seed_runs)))
        if "C" in claims:
            c_ok = runs[True]["balanced_accuracy"] > runs[False]["balanced_accuracy"]
            heads = head_loss_comparison(models[False], aff_train, aff_val, epochs=1 if args.quick else 20)
            h_ok = heads["eq2_wins"] == len(heads["seeds"])
            result["claims"]["C"] = {"eq2": runs[True], "ce": runs[False], "pass": c_ok}
            result["claims"]["C_head"] = {**heads, "pass": h_ok}
            eq2, ce = runs[True]["balanced_accuracy"], runs[False]["balanced_accuracy"]
            verdicts["C"] = (c_ok, f"all weights from scratch: balanced val acc eq. (2) {eq2:.1%} vs plain CE {ce:.1%}")
            verdicts["C_head"] = (h_ok, f"stage-A head on claim A's frozen backbone: eq. (2) "
                                        f"{heads['mean_eq2']:.1%} vs plain CE {heads['mean_ce']:.1%} (mean of "
                                        f"{len(heads['seeds'])} seeds; eq. (2) higher in {heads['eq2_wins']})")

    identity_model = None
    if need_identity:
        print("B: identity pre-training from scratch, LFW protocol on unseen people")
        recipe = IDENTITY_RECIPE
        train = data["vgg_many"]
        e = epochs_for(budget, len(train), recipe["sam"][1])
        identity_model, best = train_identity_run(train, data["lfw"], epochs=(recipe["epochs_a"], e), lr=recipe["lr"],
                                                  sam=recipe["sam"], batch_size=recipe["batch_size"],
                                                  label="recommended")
        result["claims"]["B"] = {"recommended": best}
        if "B" in claims:
            d = course_identity_defaults()
            _, nb = train_identity_run(data["vgg_notebook"], data["lfw"], epochs=d["epochs"], lr=d["lr"],
                                       sam=(True, False), batch_size=d["batch_size"], label="notebook default")
            result["claims"]["B"]["notebook_default"] = nb
            f = IDENTITY_FAST
            _, fast = train_identity_run(train, data["lfw"], epochs=(0, 1 if args.quick else args.fast_epochs),
                                         lr=f["lr"], sam=(False, False), batch_size=f["batch_size"],
                                         backbone=f["backbone"],
                                         img_size=f["img_size"], cosine=f["cosine"], label="fast (course backbone)")
            result["claims"]["B"]["fast"] = fast
            ok = best["lfw_accuracy"] >= 0.80 and best["wall_s"] <= 180
            result["claims"]["B"]["pass"] = ok
            verdicts["B"] = (ok, f"{BACKBONE} {IMG_SIZE} px: LFW {best['lfw_accuracy']:.1%} +- {best['lfw_std']:.1%} "
                                 f"(target >= 80% in <= 180 s) with {best['train_people']} people; notebook default "
                                 f"recipe {nb['lfw_accuracy']:.1%}; {f['backbone']} {f['img_size']} px "
                                 f"{fast['lfw_accuracy']:.1%} in {fast['wall_s']:.0f} s")

    if "D" in claims:
        print("D: attribute heads on the frozen identity backbone (UTKFace-like, held-out 20%)")
        model = copy.deepcopy(identity_model)
        with Timer() as t:
            history = train_attributes(model, data["utk_train"], epochs=6, lr=1e-3, img_size=IMG_SIZE, progress=False)
        m = evaluate_attributes(model, data["utk_test"], img_size=IMG_SIZE, top_l=3)
        rec = {"age_mae_eq1": round(m["age_mae"], 3), "age_mae_argmax": round(m["age_mae_argmax"], 3), "top_l": 3,
               "gender_accuracy": round(m["gender_accuracy"], 4), "race_balanced_accuracy":
               round(m["race_balanced_accuracy"], 4), "test_images": m["age_n"], **run_record(history, t, 0)}
        rec["pass"] = rec["age_mae_eq1"] < rec["age_mae_argmax"]
        result["claims"]["D"] = rec
        print(f"  age MAE eq. (1) {rec['age_mae_eq1']:.2f} vs argmax {rec['age_mae_argmax']:.2f} years; gender "
              f"{rec['gender_accuracy']:.1%}, race balanced {rec['race_balanced_accuracy']:.1%} ({t.cpu:.0f} s CPU)")
        verdicts["D"] = (rec["pass"], f"age MAE eq. (1) {rec['age_mae_eq1']:.2f} < argmax {rec['age_mae_argmax']:.2f}")

    if "E" in claims:
        print("E: emotion from the identity network: linear head on frozen x vs fine-tuning all weights")
        lin = train_emotion_run(copy.deepcopy(identity_model), data["aff_train"], data["aff_val"], weighted=True,
                                epochs=(LINEAR_HEAD_EPOCHS, 0), lr=(1e-3, 1e-3), sam=(True, False),
                                label="linear head (frozen)")
        f = FINETUNE_EMOTION
        e = epochs_for(budget, len(data["aff_train"]), f["sam"][1])
        fine = train_emotion_run(copy.deepcopy(identity_model), data["aff_train"], data["aff_val"], weighted=True,
                                 epochs=(f["epochs_a"], e), lr=f["lr"], sam=f["sam"], batch_size=f["batch_size"],
                                 label="fine-tuned")
        ok = fine["balanced_accuracy"] > lin["balanced_accuracy"]
        result["claims"]["E"] = {"linear_head": lin, "fine_tuned": fine, "pass": ok}
        verdicts["E"] = (ok, f"balanced val acc fine-tuned {fine['balanced_accuracy']:.1%} vs linear head "
                             f"{lin['balanced_accuracy']:.1%}")

    print("\nclaim  result  figure")
    for key in sorted(verdicts):
        ok, text = verdicts[key]
        print(f"  {key:<6} {'PASS' if ok else 'FAIL'}    {text}")
    result["load_average_end"] = load_average()
    print(f"figures written to {write_json(args.json, result)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

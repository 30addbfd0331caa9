"""The face world's dataset writers: byte-identical regeneration, and the readers
of facelab.data.datasets reading back exactly what the writers wrote."""
import hashlib
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from facelab.data import datasets as D
from facelab import labels as L
from facelab.errors import InvalidInputError
from facelab.synth import writers as W

PX = 32  # tiny images keep the tests fast


def _tree(root):
    """{relative path: md5} of every file below root."""
    root = Path(root)
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


TINY = {
    "vggface2": dict(n=3, images_per_person=2),
    "lfw": dict(n=5),
    "utkface": dict(n=8),
    "affectnet": dict(n=16, n_val_per_class=1),
    "scenes": dict(n=3, size=96),
}


@pytest.mark.parametrize("name", sorted(TINY))
def test_same_seed_gives_byte_identical_files_with_1_or_2_workers(tmp_path, name):
    kw = dict(TINY[name])
    size = kw.pop("size", PX)
    W.generate(name, tmp_path / "a", seed=7, size=size, workers=1, progress=False, **kw)
    W.generate(name, tmp_path / "b", seed=7, size=size, workers=2, progress=False, **kw)
    a, b = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    assert len(a) >= 4
    assert a == b
    W.generate(name, tmp_path / "c", seed=8, size=size, workers=1, progress=False, **kw)
    c = _tree(tmp_path / "c")
    images = [k for k in a if k.endswith(".jpg")]
    assert sum(a[k] != c.get(k) for k in images) >= len(images) // 2 or set(a) != set(c)


def test_item_rng_depends_on_seed_dataset_and_index():
    draw = lambda *k: W.item_rng(*k).integers(1 << 30)  # noqa: E731
    assert draw(0, "lfw", 3) == draw(0, "lfw", 3)
    assert len({draw(0, "lfw", 3), draw(1, "lfw", 3), draw(0, "utkface", 3), draw(0, "lfw", 4)}) == 4


# --- readers against writers --------------------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    W.write_vggface2(root / "vggface2", n_people=4, images_per_person=3, n_test_people=2, size=PX, seed=1,
                     progress=False)
    W.write_lfw(root / "lfw", n_people=12, size=PX, seed=1, progress=False)
    W.write_utkface(root / "utkface", n=30, size=PX, seed=1, progress=False)
    W.write_affectnet(root / "affectnet", n_train=80, n_val_per_class=2, size=PX, seed=1, progress=False)
    return root


def test_vggface2_reader_reads_writer(world):
    train = D.read_vggface2(world / "vggface2", "train")
    test = D.read_vggface2(world / "vggface2", "test")
    assert len(train) == 12 and len(test) == 6 and not train.skipped and not test.skipped
    assert train.classes == ("n000001", "n000002", "n000003", "n000004")
    assert test.classes == ("n000005", "n000006")
    assert Counter(train.targets("identity")) == {0: 3, 1: 3, 2: 3, 3: 3}
    image, lab = train[4]
    assert image.shape == (PX, PX, 3) and image.dtype == np.uint8
    assert lab == {"identity": 1, "person": "n000002"}
    lines = (world / "vggface2" / "train_list.txt").read_text().split()
    assert lines[0] == "n000001/0001_01.jpg" and len(lines) == 12
    meta = W.load_meta(world / "vggface2")
    ages = {}
    for row in meta:
        ages.setdefault(row["person_id"], []).append(float(row["age"]))
    assert all(max(a) - min(a) <= 6.0 for a in ages.values())  # base age +- 3 years


def test_lfw_reader_pairs_and_people_disjoint_from_vggface2(world):
    lfw = D.read_lfw(world / "lfw")
    assert not lfw.skipped
    counts = lfw.class_counts("identity")
    assert len(counts) == 12 and min(counts.values()) == 1 and max(counts.values()) >= 2
    assert lfw.people == counts
    assert lfw.pairs and all(a.exists() and b.exists() for a, b, _, _ in lfw.pairs)
    assert {same for _, _, same, _ in lfw.pairs} == {True, False}
    assert all(a.parent == b.parent for a, b, same, _ in lfw.pairs if same)
    vgg_meta = W.load_meta(world / "vggface2")
    lfw_meta = W.load_meta(world / "lfw")
    assert {r["name"] for r in vgg_meta}.isdisjoint({r["name"] for r in lfw_meta})
    assert {r["person_id"] for r in vgg_meta}.isdisjoint({r["person_id"] for r in lfw_meta})
    assert set(lfw.classes) == {r["name"] for r in lfw_meta}


def test_utkface_reader_labels_match_the_true_factors(world):
    ds = D.read_utkface(world / "utkface")
    assert len(ds) == 30 and not ds.skipped
    truth = {r["file"]: r for r in W.load_meta(world / "utkface")}
    for path, lab in ds.items:
        t = truth[path.name]
        assert (lab["age"], lab["gender"], lab["race"]) == (int(t["age"]), int(t["gender"]), int(t["race"]))
        stamp = path.name.split(".")[0].split("_")[3]
        assert len(stamp) == 17 and stamp.startswith("201701")
        assert 1 <= lab["age"] <= 100


def test_affectnet_reader_train_imbalance_and_balanced_val(world):
    train = D.read_affectnet(world / "affectnet", "train")
    val = D.read_affectnet(world / "affectnet", "val")
    assert train.class_counts() == W.affectnet_train_counts(80)
    assert set(val.class_counts().values()) == {2}
    counts = train.class_counts()
    assert max(counts, key=counts.get) == "Happiness"
    assert counts["Happiness"] > counts["Neutral"] > counts["Sadness"] > counts["Contempt"]
    seven = D.read_affectnet(world / "affectnet", "train", 7)
    assert len(seven) == 80 - counts["Contempt"]
    assert seven.skipped_counts() == {"class not in the 7-class vocabulary": counts["Contempt"]}


def test_affectnet_photos_show_their_expression_clearly(world):
    """Intensities lie in AFFECTNET_INTENSITY (Neutral: 1) and spread over the range."""
    rows = W.load_meta(world / "affectnet")
    lo, hi = W.AFFECTNET_INTENSITY
    k = np.array([float(r["intensity"]) for r in rows if r["emotion"] != "Neutral"])
    assert len(k) > 50 and lo <= k.min() and k.max() <= hi
    assert k.min() < lo + 0.1 and k.max() > hi - 0.1
    assert {float(r["intensity"]) for r in rows if r["emotion"] == "Neutral"} == {1.0}


def test_affectnet_csv_layout_is_read_with_boxes(tmp_path):
    summary = W.write_affectnet(tmp_path, n_train=24, n_val_per_class=1, layout="csv", size=PX, seed=3,
                                progress=False)
    train = D.read_affectnet(tmp_path, "train")
    val = D.read_affectnet(tmp_path, "val")
    assert train.class_counts() == summary["train"] and set(val.class_counts().values()) == {1}
    for _, lab in train.items:
        x1, y1, x2, y2 = lab["box"]
        assert 0 <= x1 < x2 <= PX + 1 and 0 <= y1 < y2 <= PX + 1
        assert -1 <= lab["valence"] <= 1 and -1 <= lab["arousal"] <= 1


@given(n=st.integers(200, 300_000), frac=st.sampled_from([0.015, 0.02]))
@settings(max_examples=40, deadline=None)
def test_affectnet_train_counts_keep_proportions_and_floor(n, frac):
    counts = W.affectnet_train_counts(n, frac)
    assert sum(counts.values()) == n
    assert min(counts.values()) >= np.ceil(frac * n)
    total = sum(L.AFFECTNET_TRAIN_COUNTS.values())
    for c in ("Neutral", "Sadness", "Anger"):  # unaffected classes keep AffectNet's share
        assert abs(counts[c] - n * L.AFFECTNET_TRAIN_COUNTS[c] / total) <= 1
    assert max(counts, key=counts.get) == "Happiness"


def test_age_distribution_is_realistic():
    ages = W.sample_ages(np.random.default_rng(0), 20_000)
    assert ages.min() >= 1 and ages.max() <= 100
    assert 0.35 < np.mean((ages >= 20) & (ages <= 40)) < 0.7  # mostly young adults
    assert 0.05 < np.mean(ages <= 5) < 0.2  # a bump of small children
    assert np.mean(ages >= 70) > 0.01  # a tail of old people


def test_scenes_boxes_are_read_back(tmp_path):
    W.write_scenes(tmp_path, n=3, size=96, max_faces=3, seed=2, progress=False)
    ds = D.read_scenes(tmp_path)
    assert len(ds) == 3 and not ds.skipped
    image, lab = ds[0]
    assert image.shape == (72, 96, 3)
    for _, lab in ds.items:
        assert all(0 <= b[0] < b[2] and 0 <= b[1] < b[3] for b in lab["boxes"])


# --- dispatcher and cache ------------------------------------------------------------------


def test_generate_rejects_unknown_names_and_bad_counts(tmp_path):
    with pytest.raises(InvalidInputError, match="unknown synthetic dataset"):
        W.generate("imagenet", tmp_path)
    with pytest.raises(InvalidInputError, match="n="):
        W.generate("utkface", tmp_path, n=0)


def test_ensure_dataset_generates_once_and_redoes_interrupted_runs(tmp_path, monkeypatch):
    calls = []
    real = W.generate

    def counting(*a, **k):
        calls.append(a[0])
        return real(*a, **k)

    monkeypatch.setattr(W, "generate", counting)
    path = W.ensure_dataset("utkface", n=3, size=PX, root=tmp_path, progress=False)
    assert (path / W.COMPLETE_MARKER).is_file() and len(D.read_utkface(path)) == 3
    assert W.ensure_dataset("utkface", n=3, size=PX, root=tmp_path, progress=False) == path
    assert calls == ["utkface"]
    # an interrupted generation: folder present but no completion marker -> redone
    (path / W.COMPLETE_MARKER).unlink()
    (path / "half_written.jpg").write_bytes(b"")
    again = W.ensure_dataset("utkface", n=3, size=PX, root=tmp_path, progress=False)
    assert again == path and calls == ["utkface", "utkface"]
    assert not (path / "half_written.jpg").exists()
    # a partial folder of a dead process is cleaned up
    stale = tmp_path / f"{path.name.replace('-n3-', '-n4-')}.partial-999999999"
    stale.mkdir()
    W.ensure_dataset("utkface", n=4, size=PX, root=tmp_path, progress=False)
    assert not stale.exists()
    assert W.dataset_key("utkface", n=3, seed=0, size=PX) == path.name


def test_default_data_root_honours_facelab_data(monkeypatch, tmp_path):
    monkeypatch.setenv("FACELAB_DATA", str(tmp_path / "cache"))
    assert W.default_data_root() == tmp_path / "cache"
    monkeypatch.delenv("FACELAB_DATA")
    root = W.default_data_root()
    assert root.name == "synth" and root.parent.name in ("data", "facelab")


def test_notebook_defaults_name_every_dataset_the_notebooks_use():
    assert set(W.NOTEBOOK_DEFAULTS) == {"vggface2", "lfw", "utkface", "affectnet", "afew", "vgaf"}
    for name, kw in W.NOTEBOOK_DEFAULTS.items():
        assert set(kw) <= {"n", "size", "seed"} and kw["n"] >= 1, name


def test_cli_synth_writes_a_dataset(tmp_path, capsys):
    from facelab.apps.cli import main

    rc = main(["synth", "utkface", str(tmp_path / "u"), "--n", "3", "--size", str(PX), "--seed", "2",
               "--workers", "1", "--no-progress"])
    assert rc == 0
    assert len(D.read_utkface(tmp_path / "u")) == 3
    assert "utkface" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["synth", "nosuch", str(tmp_path / "x")])
    assert exc.value.code == 1
    assert main(["synth"]) == 1
    assert not os.path.exists(tmp_path / "x")

"""facelab.training.course: the cached recipes train once, then load; names differ per setting."""
import pytest
import torch

from facelab.training import course
from facelab.checkpoints import read_checkpoint_config
from facelab.data.datasets import read_lfw, read_vggface2
from facelab.errors import InvalidInputError
from facelab.synth import writers

TINY = "test_efficientnet"  # a tiny timm model: the recipes' logic, not their accuracy, is tested here
PX = 32


@pytest.fixture(autouse=True)
def small_world(tmp_path, monkeypatch):
    """Caches in tmp_path; tiny versions of the built-in datasets; one torch thread."""
    monkeypatch.setenv("FACELAB_DATA", str(tmp_path / "synth"))
    monkeypatch.setenv("FACELAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("FACELAB_MODELS", raising=False)
    monkeypatch.delenv("FACELAB_CROPS", raising=False)
    monkeypatch.setitem(writers.NOTEBOOK_DEFAULTS, "vggface2", {"n": 4, "size": 64, "images_per_person": 3})
    monkeypatch.setitem(writers.NOTEBOOK_DEFAULTS, "lfw", {"n": 4, "size": 112})
    monkeypatch.setitem(writers.NOTEBOOK_DEFAULTS, "utkface", {"n": 20, "size": 64})
    monkeypatch.setitem(writers.NOTEBOOK_DEFAULTS, "affectnet", {"n": 16, "size": 64, "n_val_per_class": 1})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield tmp_path
    torch.set_num_threads(threads)


@pytest.fixture
def calls(monkeypatch):
    """Count the calls of the training functions the recipes use."""
    counts = {"identity": 0, "attributes": 0, "emotion": 0}

    def counting(kind, fn):
        def wrapper(*args, **kw):
            counts[kind] += 1
            return fn(*args, **kw)
        return wrapper

    monkeypatch.setattr(course, "train_identity", counting("identity", course.train_identity))
    monkeypatch.setattr(course, "train_attributes", counting("attributes", course.train_attributes))
    monkeypatch.setattr(course, "train_emotion", counting("emotion", course.train_emotion))
    return counts


def small(**kw):
    return dict(backbone=TINY, img_size=PX, crop="center", progress=False, **kw)


def weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_cache_folders_follow_the_environment(small_world, monkeypatch):
    assert course.model_dir() == small_world / "cache" / "models"
    assert course.crops_dir() == small_world / "cache" / "crops"
    monkeypatch.setenv("FACELAB_MODELS", str(small_world / "m"))
    monkeypatch.setenv("FACELAB_CROPS", str(small_world / "c"))
    assert course.model_dir() == small_world / "m" and course.crops_dir() == small_world / "c"


def test_recipe_names_are_fixed_and_differ_per_setting():
    base = course.recipe_name("identity", "mobilenetv1_100", 64, "tight", 0)
    assert base == "course_identity_mobilenetv1_100_64px_tight_s0"
    others = {
        course.recipe_name("identity", "efficientnet_b0", 64, "tight", 0),
        course.recipe_name("identity", "mobilenetv1_100", 48, "tight", 0),
        course.recipe_name("identity", "mobilenetv1_100", 64, "center", 0),
        course.recipe_name("identity", "mobilenetv1_100", 64, "tight", 1),
        course.recipe_name("identity", "mobilenetv1_100", 64, "tight", 0, extra={"epochs": [1, 2]}),
        course.recipe_name("identity", "mobilenetv1_100", 64, "tight", 0, extra={"epochs": [1, 3]}),
        course.recipe_name("emotion", "mobilenetv1_100", 64, "tight", 0, tags=("8cls", "eq2")),
    }
    assert base not in others and len(others) == 7


def test_face_crops_are_made_once_in_the_dataset_layout(monkeypatch):
    prepared = []
    real = course.prepare_dataset
    monkeypatch.setattr(course, "prepare_dataset", lambda *a, **k: prepared.append(k) or real(*a, **k))
    tight = course.face_crops("lfw", "tight", PX, progress=False)
    center = course.face_crops("lfw", "center", PX, progress=False)
    assert tight != center and len(prepared) == 2
    assert course.face_crops("lfw", "tight", PX, progress=False) == tight and len(prepared) == 2  # cached
    source = read_lfw(writers.ensure_dataset("lfw", **writers.NOTEBOOK_DEFAULTS["lfw"], progress=False))
    for folder in (tight, center):
        crops = read_lfw(folder)
        failed = len(course.crop_failures(folder))
        assert len(crops) + failed == len(source)  # every photo is a crop or a listed failure
        image, labels = crops[0]
        assert image.shape == (PX, PX, 3) and "identity" in labels
    assert len(course.crop_failures(center)) == 0  # the centre crop needs no detector


def test_identity_recipe_trains_once_then_loads(calls):
    first = course.identity_model(**small(epochs=(1, 1)))
    assert calls["identity"] == 1
    name = first.course_name
    assert name.startswith(f"course_identity_{TINY}_{PX}px_center_s0")
    assert course.recipe_path(name).is_file()
    history = course.recipe_history(name)
    assert list(history["stage"]) == ["A", "B"]

    second = course.identity_model(**small(epochs=(1, 1)))
    assert calls["identity"] == 1  # loaded, not trained
    assert second.course_name == name
    before, after = weights(first), weights(second)
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    people = len(read_vggface2(course.face_crops("vggface2", "center", PX, progress=False)).label_names["identity"])
    assert second.head_sizes == {"identity": people}
    recipe = read_checkpoint_config(course.recipe_path(name))["extra"]["recipe"]
    assert recipe["kind"] == "identity" and recipe["epochs"] == [1, 1] and recipe["crop"] == "center"

    third = course.identity_model(**small(epochs=(1, 1), seed=1))  # another setting -> another file
    assert calls["identity"] == 2 and third.course_name != name


def test_a_stale_cached_recipe_is_retrained(calls, monkeypatch):
    course.identity_model(**small(epochs=(1, 0)))
    monkeypatch.setattr(course, "RECIPE_VERSION", course.RECIPE_VERSION + 1)
    course.identity_model(**small(epochs=(1, 0)))
    assert calls["identity"] == 2
    course.identity_model(**small(epochs=(1, 0)))
    assert calls["identity"] == 2


def test_a_model_trained_on_older_face_world_files_is_retrained(calls, monkeypatch):
    name = course.identity_model(**small(epochs=(1, 0))).course_name
    recipe = read_checkpoint_config(course.recipe_path(name))["extra"]["recipe"]
    assert recipe["data"] == f"vggface2/train@v{writers.dataset_version('vggface2')}"
    # the VGGFace2-like files change format: same cache name, but the recipe no longer matches
    monkeypatch.setattr(writers, "DATASET_VERSION", {**writers.DATASET_VERSION, "vggface2": 99})
    assert course.identity_model(**small(epochs=(1, 0))).course_name == name
    assert calls["identity"] == 2
    recipe = read_checkpoint_config(course.recipe_path(name))["extra"]["recipe"]
    assert recipe["data"] == "vggface2/train@v99"


def test_attribute_recipe_reuses_the_identity_model_and_keeps_its_backbone(calls):
    identity = course.identity_model(**small(epochs=(1, 1)))
    attributes = course.attribute_model(**small(epochs=1, identity_epochs=(1, 1)))
    assert calls == {"identity": 1, "attributes": 1, "emotion": 0}
    assert {"age", "gender", "race", "identity"} <= set(attributes.head_sizes)
    ident = identity.backbone.state_dict()
    assert all(torch.equal(v, ident[k]) for k, v in attributes.backbone.state_dict().items())  # frozen backbone
    again = course.attribute_model(**small(epochs=1, identity_epochs=(1, 1)))
    assert calls["attributes"] == 1 and again.course_name == attributes.course_name
    train, test = course.utkface_data(PX, "center", progress=False)
    assert len(train) + len(test) == 20 and not set(train.paths) & set(test.paths)


def test_emotion_recipe_trains_once_and_names_its_classes(calls):
    model = course.emotion_model(**small(epochs=(1, 1), identity_epochs=(1, 0)))
    assert calls == {"identity": 1, "attributes": 0, "emotion": 1}
    assert model.head_sizes["emotion"] == 8 and "_8cls_eq2_" in model.course_name
    again = course.emotion_model(**small(epochs=(1, 1), identity_epochs=(1, 0)))
    assert calls["emotion"] == 1 and again.course_name == model.course_name
    plain = course.emotion_model(**small(epochs=(1, 1), identity_epochs=(1, 0), weighted=False, num_classes=7))
    assert calls["emotion"] == 2 and "_7cls_ce_" in plain.course_name and plain.head_sizes["emotion"] == 7


def test_emotion_runs_differ_by_run_seed_and_identity_crop_with_their_own_names(calls, monkeypatch):
    seeds = []
    real = course.train_emotion
    monkeypatch.setattr(course, "train_emotion", lambda *a, **k: seeds.append(k["seed"]) or real(*a, **k))
    kw = dict(epochs=(1, 0), identity_epochs=(1, 0), weighted=False)
    base = course.emotion_model(**small(**kw))
    same = course.emotion_model(**small(**kw, run_seed=0, identity_crop="center"))  # the defaults spelt out
    assert same.course_name == base.course_name and seeds == [0]
    other = course.emotion_model(**small(**kw, run_seed=1))
    assert other.course_name != base.course_name and seeds == [0, 1]
    assert calls["identity"] == 1  # same identity network (seed 0) for both runs
    recipe = read_checkpoint_config(course.recipe_path(other.course_name))["extra"]["recipe"]
    assert recipe["run_seed"] == 1 and recipe["seed"] == 0 and "identity_crop" not in recipe
    # fine-tuned on tight crops, starting from the identity network of centre crops
    crossed = course.emotion_model(**dict(small(**kw), crop="tight", identity_crop="center"))
    assert calls["identity"] == 1 and "_tight_" in crossed.course_name


def test_emotion_also_cache_keeps_the_shorter_run_of_the_same_training(calls):
    kw = dict(identity_epochs=(1, 0), weighted=False, run_seed=1)
    long = course.emotion_model(**small(epochs=(1, 2), also_cache=(1,), **kw))
    assert calls["emotion"] == 1
    assert "also_cache" not in read_checkpoint_config(course.recipe_path(long.course_name))["extra"]["recipe"]
    short = course.emotion_model(**small(epochs=(1, 1), **kw))   # cached by the longer run: no training
    assert calls["emotion"] == 1 and short.course_name != long.course_name
    assert list(course.recipe_history(short.course_name)["stage"]) == ["A", "B"]
    trained = course.emotion_model(**small(epochs=(1, 1), retrain=True, **kw))  # the same recipe, trained alone
    assert calls["emotion"] == 2
    assert all(torch.equal(a, b) for a, b in zip(weights(short).values(), weights(trained).values()))
    with pytest.raises(InvalidInputError, match="also_cache"):
        course.emotion_model(**small(epochs=(1, 2), also_cache=(2,), **kw))


def test_bad_arguments_are_named():
    from facelab.errors import CheckpointError, InvalidInputError

    with pytest.raises(InvalidInputError, match="num_classes"):
        course.emotion_model(**small(num_classes=6))
    with pytest.raises(InvalidInputError, match="unknown dataset"):
        course.face_crops("imagenet", progress=False)
    with pytest.raises(CheckpointError, match="no training history"):
        course.recipe_history("course_identity_nothing")


def test_default_recipes_use_the_fixed_names(monkeypatch):
    asked = []
    monkeypatch.setattr(course, "load_cached", lambda name, recipe: asked.append((name, recipe)) or "cached")
    assert course.identity_model() == "cached"
    assert course.attribute_model() == "cached"
    assert course.emotion_model() == "cached" and course.emotion_model(num_classes=7, weighted=False) == "cached"
    b = course.COURSE_BACKBONE
    assert [name for name, _ in asked] == [
        f"course_identity_{b}_64px_tight_s0", f"course_attributes_{b}_64px_tight_s0",
        f"course_emotion_{b}_64px_tight_8cls_eq2_s0", f"course_emotion_{b}_64px_tight_7cls_ce_s0"]
    identity = asked[0][1]
    assert identity["lr"] == list(course.IDENTITY_LR) and identity["epochs"] == list(course.IDENTITY_EPOCHS)
    course.identity_model(pretrained=True)  # the paper's learning rates when starting from ImageNet weights
    assert asked[-1][1]["lr"] == list(course.PRETRAINED_IDENTITY_LR)
    assert asked[-1][0].startswith(asked[0][0] + "_")  # another network, another file


def test_the_validation_curve_changes_no_weight_nor_the_cache_name(calls):
    plain = course.identity_model(**small(epochs=(1, 1)))
    assert "val_unseen_acc" not in course.recipe_history(plain.course_name)
    with_curve = course.identity_model(**small(epochs=(1, 1), val_curve=True))  # trained again to record it
    assert calls["identity"] == 2 and with_curve.course_name == plain.course_name
    before, after = weights(plain), weights(with_curve)
    assert all(torch.equal(before[k], after[k]) for k in before)  # bit for bit the same training
    curve = course.recipe_history(plain.course_name)["val_unseen_acc"]
    assert len(curve) == 2 and curve.between(0, 1).all()
    course.identity_model(**small(epochs=(1, 1), val_curve=True))
    course.identity_model(**small(epochs=(1, 1)))
    assert calls["identity"] == 2  # both load the one checkpoint


def test_a_longer_stage_b_continues_from_the_shorter_run(calls):
    short = course.identity_model(**small(epochs=(1, 1), val_curve=True))
    assert course.state_path(short.course_name).is_file()
    resumed = course.identity_model(**small(epochs=(1, 3), val_curve=True))
    history = course.recipe_history(resumed.course_name)
    assert list(history["stage"]) == ["A", "B", "B", "B"] and history["val_unseen_acc"].notna().all()
    assert history["val_unseen_acc"].iloc[:2].tolist() == course.recipe_history(short.course_name)["val_unseen_acc"].tolist()
    scratch = course.identity_model(**small(epochs=(1, 3)), retrain=True)  # from random weights, all 4 epochs
    assert calls["identity"] == 3 and scratch.course_name == resumed.course_name
    a, b = weights(resumed), weights(scratch)
    assert all(torch.equal(a[k], b[k]) for k in a)  # continuing = training uninterrupted
    assert history["loss"].tolist() == course.recipe_history(scratch.course_name)["loss"].tolist()

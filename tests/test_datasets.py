"""Readers against HAND-MADE folders in each real layout, including malformed entries.

Every malformed entry must be skipped *and* counted with a reason; a folder in the
wrong layout must raise DatasetFormatError naming the expected layout.
"""
import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facelab.data import datasets as D
from facelab import labels as L
from facelab.errors import DatasetFormatError


def _jpg(path, value=128, size=(8, 6)):
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.zeros((size[1], size[0], 3), np.uint8)
    arr[..., 0] = value  # red channel marks RGB order
    Image.fromarray(arr).save(path, quality=95)
    return path


def _touch(path, text="x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _video(path, n_frames=5, size=16):
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=10)
        s.width = s.height = size
        s.pix_fmt = "yuv420p"
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(np.full((size, size, 3), 20 * i, np.uint8), format="rgb24")
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


# --- VGGFace2 ----------------------------------------------------------------------------


def test_vggface2_walks_person_folders_and_counts_strays(tmp_path):
    for pid, n in (("n000002", 2), ("n000001", 3)):
        for k in range(n):
            _jpg(tmp_path / "train" / pid / f"{k + 1:04d}_01.jpg", value=200)
    _touch(tmp_path / "train" / "stray.jpg")
    _touch(tmp_path / "train" / "n000001" / "notes.txt")
    ds = D.read_vggface2(tmp_path)
    assert len(ds) == 5
    assert ds.classes == ("n000001", "n000002")
    assert ds.targets("identity").count(0) == 3 and ds.targets("identity").count(1) == 2
    assert len(ds.skipped) == 2
    assert ds.skipped_counts() == {"file outside a person folder": 1, "not an image file": 1}
    image, lab = ds[0]
    assert image.shape == (6, 8, 3) and image.dtype == np.uint8
    assert image[..., 0].mean() > 100 and image[..., 2].mean() < 20  # RGB, not BGR
    assert lab == {"identity": 0, "person": "n000001"}


def test_vggface2_list_file_defines_split_and_counts_missing(tmp_path):
    _jpg(tmp_path / "train" / "n000001" / "0001_01.jpg")
    _jpg(tmp_path / "train" / "n000003" / "0002_01.jpg")
    _jpg(tmp_path / "train" / "n000003" / "unlisted.jpg")
    (tmp_path / "train_list.txt").write_text(
        "n000001/0001_01.jpg\nn000003/0002_01.jpg\nn000003/missing.jpg\nbad_line\n\n")
    ds = D.read_vggface2(tmp_path, "train")
    assert [p.name for p in ds.paths] == ["0001_01.jpg", "0002_01.jpg"]
    assert ds.targets("person") == ["n000001", "n000003"]
    assert sorted(r for _, r in ds.skipped) == sorted(
        ["listed image missing", "malformed list line: expected <person_id>/<image>.jpg"])
    out = ds.write_skipped_csv(tmp_path / "skipped.csv")
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["entry", "reason"] and len(rows) == 3
    assert "2 skipped" in ds.report()


def test_vggface2_wrong_layout_names_expected_layout(tmp_path):
    _jpg(tmp_path / "photos" / "a.jpg")
    with pytest.raises(DatasetFormatError, match="<person_id>"):
        D.read_vggface2(tmp_path)
    with pytest.raises(DatasetFormatError, match="not found"):
        D.read_vggface2(tmp_path / "nope")
    (tmp_path / "train").mkdir()
    with pytest.raises(DatasetFormatError, match="no usable entries"):
        D.read_vggface2(tmp_path)


# --- LFW -----------------------------------------------------------------------------------


def _lfw(tmp_path):
    for name, n in (("Ann_Lee", 3), ("Bob_Stone", 1), ("Cy_Twain", 2)):
        for k in range(1, n + 1):
            _jpg(tmp_path / name / f"{name}_{k:04d}.jpg")
    _jpg(tmp_path / "Ann_Lee" / "Bob_Stone_0009.jpg")  # wrong person in the name
    _jpg(tmp_path / "Ann_Lee" / "Ann_Lee_1.jpg")  # not 4 digits
    _touch(tmp_path / "lfw.tgz")
    (tmp_path / "people.txt").write_text("1\n3\nAnn_Lee\t3\nBob_Stone\t1\nCy_Twain 2\ngarbage line here\n")
    (tmp_path / "pairs.txt").write_text(
        "1\t2\nAnn_Lee\t1\t2\nCy_Twain\t1\t5\nAnn_Lee\t1\tBob_Stone\t1\nCy_Twain 2 Bob_Stone 1\nx y\n")


def test_lfw_people_pairs_and_malformed_names(tmp_path):
    _lfw(tmp_path)
    ds = D.read_lfw(tmp_path)
    assert len(ds) == 6
    assert ds.classes == ("Ann_Lee", "Bob_Stone", "Cy_Twain")
    assert ds.class_counts("identity") == {"Ann_Lee": 3, "Bob_Stone": 1, "Cy_Twain": 2}
    assert ds.people == {"Ann_Lee": 3, "Bob_Stone": 1, "Cy_Twain": 2}
    assert len(ds.pairs) == 3
    assert [p[2] for p in ds.pairs] == [True, False, False]
    assert ds.pairs[0][0].name == "Ann_Lee_0001.jpg" and ds.pairs[0][1].name == "Ann_Lee_0002.jpg"
    counts = ds.skipped_counts()
    assert counts["name does not match Ann_Lee_NNNN.jpg"] == 2
    assert counts["file outside a person folder"] == 1
    assert counts["pair names a missing photo"] == 1
    assert counts["malformed pairs.txt line"] == 1
    assert counts["malformed people.txt line"] == 1
    assert len(ds.skipped) == 6


def test_lfw_wrong_layout(tmp_path):
    _jpg(tmp_path / "a.jpg")
    with pytest.raises(DatasetFormatError, match="<Name>_0001.jpg"):
        D.read_lfw(tmp_path)


# --- UTKFace -------------------------------------------------------------------------------


def test_utkface_parses_codes_and_counts_malformed_names(tmp_path):
    good = ["25_0_2_20170116174525125.jpg.chip.jpg", "1_1_4_20170103182939823.jpg.chip.jpg",
            "116_1_0_20170120134921760.jpg.chip.jpg", "40_0_1_20170117.jpg"]
    bad = {"39_1_20170116174525125.jpg.chip.jpg": "name does not match",  # missing race (real case)
           "117_0_0_20170116174525125.jpg.chip.jpg": "age out of range",
           "30_2_0_20170116174525125.jpg.chip.jpg": "gender code",
           "30_0_5_20170116174525125.jpg.chip.jpg": "race code",
           "abc_0_0_20170116174525125.jpg.chip.jpg": "name does not match",
           "_0_0_1.jpg": "name does not match"}
    for name in good + list(bad):
        _jpg(tmp_path / name)
    _touch(tmp_path / "readme.pdf")
    ds = D.read_utkface(tmp_path)
    assert len(ds) == 4
    labels = {p.name: lab for p, lab in ds.items}
    assert labels[good[0]] == {"age": 25, "gender": 0, "race": 2}
    assert labels[good[2]] == {"age": 116, "gender": 1, "race": 0}
    assert len(ds.skipped) == len(bad) + 1
    reasons = {Path(e).name: r for e, r in ds.skipped}
    for name, why in bad.items():
        assert reasons[name].startswith(why), (name, reasons[name])
    assert ds.class_counts("gender") == {"Male": 2, "Female": 2}


def test_utkface_wrong_layout(tmp_path):
    _jpg(tmp_path / "holiday.jpg")
    with pytest.raises(DatasetFormatError, match="<age>_<gender>_<race>"):
        D.read_utkface(tmp_path)


# --- AffectNet -----------------------------------------------------------------------------


def _affectnet_folders(tmp_path):
    layout = {"Happy": 3, "sad": 2, "Angry": 1, "Surprised": 1, "Neutral": 2, "Contempt": 2,
              "Disgust": 1, "Fear": 1, "Bored": 2}
    for folder, n in layout.items():
        for k in range(n):
            _jpg(tmp_path / "train" / folder / f"{k}.jpg")
    _touch(tmp_path / "train" / "Happy" / "x.txt")
    _touch(tmp_path / "train" / "loose.jpg")
    for e in L.EMOTIONS_8:
        _jpg(tmp_path / "val" / e / "0.jpg")


def test_affectnet_class_folders_with_aliases_8_and_7_classes(tmp_path):
    _affectnet_folders(tmp_path)
    ds = D.read_affectnet(tmp_path, "train", 8)
    assert ds.classes == L.EMOTIONS_8
    assert ds.class_counts() == {"Anger": 1, "Contempt": 2, "Disgust": 1, "Fear": 1, "Happiness": 3,
                                 "Neutral": 2, "Sadness": 2, "Surprise": 1}
    assert ds.skipped_counts() == {"unknown class folder": 2, "not an image file": 1,
                                   "file outside a class folder": 1}
    ds7 = D.read_affectnet(tmp_path, "train", 7)
    assert ds7.classes == L.EMOTIONS_7 and len(ds7) == len(ds) - 2
    assert ds7.skipped_counts()["class not in the 7-class vocabulary"] == 2
    assert ds7[0][1] == {"emotion": L.EMOTIONS_7.index("Anger")}
    val = D.read_affectnet(tmp_path, "val")
    assert set(val.class_counts().values()) == {1}


def test_affectnet_official_csv(tmp_path):
    images = tmp_path / "Manually_Annotated_Images"
    rows = [("689/a.jpg", 10, 12, 50, 60, 0),  # Neutral
            ("689/b.jpg", 0, 0, 40, 40, 1),  # Happiness
            ("690/c.jpg", 0, 0, 40, 40, 7),  # Contempt
            ("690/d.jpg", 0, 0, 40, 40, 8),  # None -> skipped
            ("690/e.jpg", 0, 0, 40, 40, 9),  # Uncertain
            ("690/f.jpg", 0, 0, 40, 40, 10),  # No-Face
            ("690/g.jpg", 0, 0, 40, 40, 11),  # out of range
            ("690/h.jpg", 0, 0, "", 40, 3),  # bad box
            ("690/missing.jpg", 0, 0, 40, 40, 3),
            ("690/i.jpg", 0, 0, 40, 40, "x")]
    for r in rows:
        if "missing" not in r[0]:
            _jpg(images / r[0])
    with open(tmp_path / "training.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
                    "facial_landmarks", "expression", "valence", "arousal"])
        for path, x, y, wd, h, e in rows:
            w.writerow([path, x, y, wd, h, "1.0;2.0;3.0", e, 0.5, -0.25])
    ds = D.read_affectnet(tmp_path, "train")
    assert [p.name for p in ds.paths] == ["a.jpg", "b.jpg", "c.jpg"]
    assert ds[0][1] == {"emotion": L.EMOTIONS_8.index("Neutral"), "box": (10.0, 12.0, 60.0, 72.0),
                        "valence": 0.5, "arousal": -0.25}
    assert ds.targets("emotion")[1] == L.EMOTIONS_8.index("Happiness")
    assert ds.skipped_counts() == {"expression id 8 (None)": 1, "expression id 9 (Uncertain)": 1,
                                   "expression id 10 (No-Face)": 1,
                                   "expression id out of range 0..10": 1, "malformed face box": 1,
                                   "listed image missing": 1, "malformed expression id": 1}
    ds7 = D.read_affectnet(tmp_path, "train", num_classes=7)
    assert len(ds7) == 2 and len(ds7.skipped) == 8


def test_affectnet_csv_missing_columns_and_wrong_layout(tmp_path):
    (tmp_path / "validation.csv").write_text("path,label\na.jpg,1\n")
    with pytest.raises(DatasetFormatError, match="face_x"):
        D.read_affectnet(tmp_path, "val")
    with pytest.raises(DatasetFormatError, match="class folders"):
        D.read_affectnet(tmp_path, "train")


# --- AFEW ----------------------------------------------------------------------------------


def test_afew_videos_and_frame_folders(tmp_path):
    _video(tmp_path / "Train" / "Happy" / "001.avi", n_frames=4)
    _video(tmp_path / "Train" / "Angry" / "002.mp4", n_frames=3)
    for k in (1, 2, 10):
        _jpg(tmp_path / "Train" / "Sad" / "003" / f"frame{k}.jpg", value=k * 20)
    (tmp_path / "Train" / "Sad" / "004").mkdir()  # empty frame folder
    _touch(tmp_path / "Train" / "Sad" / "notes.txt")
    _video(tmp_path / "Train" / "Contempt" / "005.avi")  # not an AFEW class
    _video(tmp_path / "Train" / "Bored" / "006.avi")
    ds = D.read_afew(tmp_path, "train")
    assert ds.classes == L.EMOTIONS_7
    assert len(ds) == 3
    by_name = {p.name: lab["emotion"] for p, lab in ds.items}
    assert by_name == {"001.avi": L.EMOTIONS_7.index("Happiness"), "002.mp4": L.EMOTIONS_7.index("Anger"),
                       "003": L.EMOTIONS_7.index("Sadness")}
    assert ds.skipped_counts() == {"unknown emotion folder": 2, "frame folder without images": 1,
                                   "not a video file": 1}
    lengths = {ds.items[i][0].name: sum(1 for _ in ds.frames(i)) for i in range(len(ds))}
    assert lengths == {"001.avi": 4, "002.mp4": 3, "003": 3}
    i = [p.name for p in ds.paths].index("003")
    reds = [int(f[..., 0].mean()) for f in ds.frames(i)]
    assert reds == sorted(reds)  # natural order: frame1, frame2, frame10


def test_afew_wrong_layout(tmp_path):
    _video(tmp_path / "clip.avi")
    with pytest.raises(DatasetFormatError, match="Angry, Disgust"):
        D.read_afew(tmp_path, "val")


# --- VGAF ----------------------------------------------------------------------------------


def test_vgaf_label_file_every_line_and_video_accounted(tmp_path):
    for name in ("1_1", "1_2", "2_1", "3_1", "9_9"):
        _video(tmp_path / "Train" / f"{name}.mp4", n_frames=2)
    _touch(tmp_path / "Train" / "thumbs.db")
    (tmp_path / "Train_labels.txt").write_text(
        "Vid_name Label\n1_1 1\n1_2.mp4 3\n2_1 2\n2_1 2\n3_1 4\nmissing 1\nbroken line here\n")
    ds = D.read_vgaf(tmp_path, "train")
    assert ds.classes == L.VGAF_CLASSES
    assert {p.stem: lab["group"] for p, lab in ds.items} == {"1_1": 0, "1_2": 2, "2_1": 1}
    assert ds.skipped_counts() == {"label code not 1, 2 or 3": 1, "duplicate label line": 1,
                                   "labelled clip has no video": 1,
                                   "malformed label line": 1, "video has no label line": 2,
                                   "not a video file": 1}
    path, lab = ds[0]
    assert path.exists() and lab == {"group": 0}


def test_vgaf_missing_label_file(tmp_path):
    _video(tmp_path / "Val" / "1_1.mp4")
    with pytest.raises(DatasetFormatError, match="Val_labels.txt"):
        D.read_vgaf(tmp_path, "val")


def test_read_dataset_dispatch_and_unknown_name(tmp_path):
    _jpg(tmp_path / "25_0_2_20170116174525125.jpg.chip.jpg")
    assert len(D.read_dataset("utkface", tmp_path)) == 1
    with pytest.raises(DatasetFormatError, match="unknown dataset"):
        D.read_dataset("imagenet", tmp_path)


def test_dataloader_collates_labels(tmp_path):
    import torch

    for k in range(4):
        _jpg(tmp_path / "train" / "Happy" / f"{k}.jpg")
    ds = D.read_affectnet(tmp_path, "train", transform=lambda im: torch.from_numpy(im.copy()))
    images, labs = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert images.shape == (4, 6, 8, 3)
    assert labs["emotion"].tolist() == [L.EMOTIONS_8.index("Happiness")] * 4


def test_affectnet_numeric_folders_are_raw_ids(tmp_path):
    for raw, n in ((0, 2), (1, 1), (7, 1), (9, 2)):
        for k in range(n):
            _jpg(tmp_path / "train" / str(raw) / f"{k}.jpg")
    ds = D.read_affectnet(tmp_path, "train")
    assert ds.class_counts() == {**{e: 0 for e in L.EMOTIONS_8}, "Neutral": 2, "Happiness": 1, "Contempt": 1}
    assert ds.skipped_counts() == {"expression id 9 (Uncertain)": 2}


def test_drop_unreadable_moves_broken_files_to_skipped(tmp_path):
    _jpg(tmp_path / "train" / "Happy" / "ok.jpg")
    _touch(tmp_path / "train" / "Happy" / "broken.jpg", "<html>not a jpeg</html>")
    (tmp_path / "train" / "Sad").mkdir()
    (tmp_path / "train" / "Sad" / "empty.jpg").write_bytes(b"")
    ds = D.read_affectnet(tmp_path, "train")
    assert len(ds) == 3 and not ds.skipped
    ds.drop_unreadable()
    assert [p.name for p in ds.paths] == ["ok.jpg"]
    assert ds.skipped_counts() == {"unreadable image": 2}
    assert "2 skipped" in ds.report()


def test_lfw_index_files_next_to_the_image_folder(tmp_path):
    for k in (1, 2):
        _jpg(tmp_path / "lfw" / "Ann_Lee" / f"Ann_Lee_{k:04d}.jpg")
    (tmp_path / "pairs.txt").write_text("1 1\nAnn_Lee 1 2\n")
    ds = D.read_lfw(tmp_path / "lfw")
    assert len(ds.pairs) == 1 and ds.pairs[0][2] is True and ds.people is None

"""AFEW: ``ROOT/Train/<Emotion>/<clip>.avi`` (or a folder of frames)."""
from __future__ import annotations

from pathlib import Path

from facelab import labels as L
from facelab.data.io import is_image_file, is_video_file
from facelab.data.layouts.dataset import FaceVideoDataset
from facelab.data.layouts.folders import is_layout_file, no_items_error, require_split_dir, sub_folders

AFEW_LAYOUT = ("ROOT/<Train|Val>/<Emotion>/<clip>.avi|.mp4 (or <clip>/ folders of frame images), "
               "Emotion in Angry, Disgust, Fear, Happy, Neutral, Sad, Surprise")


def read_afew(root, split="train") -> FaceVideoDataset:
    """AFEW: labels ``emotion`` = index in ``labels.EMOTIONS_7`` (AFEW has 7 classes).

    A clip is a video file, or a folder of extracted frames (frame order: natural
    sort of the file names).  Frame folders without images are skipped and counted.
    """
    root = Path(root)
    split_dir = require_split_dir(root, split, AFEW_LAYOUT)
    classes = L.EMOTIONS_7
    items, skipped = [], []
    for folder in sub_folders(split_dir, "emotion", skipped):
        emotion = L.emotion_from_name(folder.name)
        for clip in sorted(folder.iterdir()):
            if is_layout_file(clip):
                continue
            if emotion is None or emotion not in classes:
                skipped.append((str(clip), f"unknown emotion folder: '{folder.name}'"))
            elif clip.is_dir():
                if any(is_image_file(p) for p in clip.iterdir()):
                    items.append((clip, {"emotion": classes.index(emotion)}))
                else:
                    skipped.append((str(clip), "frame folder without images"))
            elif is_video_file(clip):
                items.append((clip, {"emotion": classes.index(emotion)}))
            else:
                skipped.append((str(clip), "not a video file: extension " + (clip.suffix or "(none)")))
    if not items:
        raise no_items_error(split_dir, AFEW_LAYOUT, skipped)
    return FaceVideoDataset(items, classes=classes, label_names={"emotion": classes}, skipped=skipped,
                            root=split_dir, layout="afew")


__all__ = ["AFEW_LAYOUT", "read_afew"]

"""Label vocabularies and mappings: the one source of truth for every class order.

Emotion order follows the released HSEmotion weights (ImageFolder, alphabetical),
so facelab checkpoints and imported HSEmotion models agree on what logit k means.
"""
from __future__ import annotations

# --- emotions -----------------------------------------------------------------
#: 8 AffectNet classes in facelab's (alphabetical, HSEmotion-compatible) order.
EMOTIONS_8 = ("Anger", "Contempt", "Disgust", "Fear", "Happiness", "Neutral", "Sadness", "Surprise")
#: The 7-class variant drops Contempt (paper, Sec. emotion recognition).
EMOTIONS_7 = tuple(e for e in EMOTIONS_8 if e != "Contempt")

#: AffectNet's own raw expression ids (official CSV) -> facelab emotion name.
AFFECTNET_RAW_IDS = {
    0: "Neutral", 1: "Happiness", 2: "Sadness", 3: "Surprise",
    4: "Fear", 5: "Disgust", 6: "Anger", 7: "Contempt",
}
#: Raw ids AffectNet uses for images that carry no emotion label; readers skip and count them.
AFFECTNET_SKIPPED_IDS = {8: "None", 9: "Uncertain", 10: "No-Face"}

#: Training-set counts of AffectNet's manually annotated images (used to give the
#: synthetic AffectNet-like set the real class imbalance).  Validation is balanced.
AFFECTNET_TRAIN_COUNTS = {
    "Neutral": 74874, "Happiness": 134415, "Sadness": 25459, "Surprise": 14090,
    "Fear": 6378, "Disgust": 3803, "Anger": 24882, "Contempt": 3750,
}

#: Spellings of emotion names met in real dataset folders (lower-case) -> facelab emotion name.
EMOTION_ALIASES = {
    "anger": "Anger", "angry": "Anger", "contempt": "Contempt", "disgust": "Disgust",
    "disgusted": "Disgust", "fear": "Fear", "fearful": "Fear", "afraid": "Fear",
    "happiness": "Happiness", "happy": "Happiness", "neutral": "Neutral",
    "sadness": "Sadness", "sad": "Sadness", "surprise": "Surprise", "surprised": "Surprise",
}


def emotion_from_name(name: str):
    """A folder name such as ``Happy`` or ``surprised`` -> facelab emotion name, or None."""
    return EMOTION_ALIASES.get(str(name).strip().lower())


#: AFEW folder names (7 classes) -> facelab emotion name.
AFEW_EMOTIONS = {
    "Angry": "Anger", "Disgust": "Disgust", "Fear": "Fear", "Happy": "Happiness",
    "Neutral": "Neutral", "Sad": "Sadness", "Surprise": "Surprise",
}
AFEW_FOLDERS = {v: k for k, v in AFEW_EMOTIONS.items()}

#: VGAF group-level classes and the integer codes of its label file.
VGAF_CLASSES = ("Positive", "Neutral", "Negative")
VGAF_CODES = {1: "Positive", 2: "Neutral", 3: "Negative"}
#: Emotions counted as positive / negative when a group label is derived from its members.
POSITIVE_EMOTIONS = frozenset({"Happiness", "Surprise"})
NEGATIVE_EMOTIONS = frozenset({"Anger", "Contempt", "Disgust", "Fear", "Sadness"})

# --- attributes (UTKFace codes) -----------------------------------------------
#: UTKFace gender code -> name.
GENDERS = ("Male", "Female")
#: UTKFace race code -> name (C_r = 5).
RACES = ("White", "Black", "Asian", "Indian", "Others")
#: Age classes 1..C_a years (C_a = 100); class index k means age k + 1.
NUM_AGE_CLASSES = 100
MIN_AGE, MAX_AGE = 1, NUM_AGE_CLASSES

# --- preprocessing --------------------------------------------------------------
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def emotions(num_classes: int) -> tuple[str, ...]:
    """The emotion vocabulary for an 8- or 7-class model."""
    if num_classes == 8:
        return EMOTIONS_8
    if num_classes == 7:
        return EMOTIONS_7
    raise ValueError(f"emotion models have 8 or 7 classes, not {num_classes}")


def age_to_class(age: int) -> int:
    """Age in years (1..100, clipped) -> age class index (0-based)."""
    return int(min(max(age, MIN_AGE), MAX_AGE)) - MIN_AGE


def class_to_age(index: int) -> int:
    """Age class index (0-based) -> age in years (1-based, as in eq. 1)."""
    return int(index) + MIN_AGE


#: ``trained_on`` of every network trained on the built-in face world: drawn faces, not photos.
FACE_WORLD = "face world (synthetic)"


def is_face_world(trained_on) -> bool:
    """Did these weights learn only drawn faces (:data:`FACE_WORLD`)?  Their predictions on
    real photos mean nothing: the photos come from another distribution (domain shift)."""
    return isinstance(trained_on, str) and trained_on.startswith("face world")


def group_label(member_emotions) -> str:
    """VGAF-style group label from the members' emotions: the majority valence wins,
    ties and a neutral majority give "Neutral"."""
    member_emotions = list(member_emotions)
    pos = sum(e in POSITIVE_EMOTIONS for e in member_emotions)
    neg = sum(e in NEGATIVE_EMOTIONS for e in member_emotions)
    neu = len(member_emotions) - pos - neg
    if pos > neg and pos > neu:
        return "Positive"
    if neg > pos and neg > neu:
        return "Negative"
    return "Neutral"

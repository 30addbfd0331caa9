"""People of the built-in face world: identities with fixed facial traits.

A :class:`Person` is drawn once from ``(seed, person_id)`` and never changes: the
renderer (:mod:`facelab.synth.render`) combines these *identity traits* with the
*state* of one photo (age, expression, pose, light ...).  Gender and race group
shift the distributions the traits are drawn from, but every distribution
overlaps with the others: no single trait decides a label, as with real faces.

Labels use UTKFace's codes from :mod:`facelab.labels` (``GENDERS``, ``RACES``).
Colours are RGB tuples of floats in 0..255.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facelab.errors import InvalidInputError
from facelab.labels import GENDERS, RACES

RGB = tuple[float, float, float]

# --- hair styles and facial hair (indices stored in Traits) -----------------------
HAIR_STYLES = ("buzz", "short", "side_part", "bob", "long", "curly", "bun")
FACIAL_HAIR = ("none", "stubble", "moustache", "goatee", "beard")


@dataclass(frozen=True)
class Traits:
    """Identity traits of one person (fixed for life; age and expression act on top).

    Lengths are fractions of the face-box height (brows to chin); shape factors are
    around 1.0; colours are RGB in 0..255.
    """

    face_width: float        # half width of the face at the cheekbones
    jaw_width: float         # jaw width relative to cheek width
    jaw_square: float        # superellipse exponent of the jaw (2 round .. 3.5 square)
    chin_length: float       # how far the chin reaches down (shape factor)
    skin: RGB                # base skin colour
    eye_size: float          # eye width
    eye_open: float          # eye height / width (narrow .. round)
    eye_spacing: float       # half distance between the eye centres
    eye_tilt: float          # outer-corner lift (positive = upturned)
    iris: RGB                # iris colour
    brow_thickness: float
    brow_height: float       # extra gap between eye and brow
    brow_arch: float
    nose_length: float
    nose_width: float
    mouth_width: float
    lip_upper: float         # upper lip fullness
    lip_lower: float         # lower lip fullness
    lip_color: RGB
    ear_size: float
    ear_out: float           # how far the ears stick out
    hair_style: int          # index into HAIR_STYLES
    hair_color: RGB
    hairline: float          # forehead height (higher = more forehead)
    balding: float           # 0 none .. 1 strong recession with age (mostly men)
    grey_onset: float        # age at which greying is half done
    facial_hair: int         # index into FACIAL_HAIR (adult men only)
    freckles: float          # 0 .. 1 density
    moles: tuple[tuple[float, float, float], ...]  # (x, y, radius) in face coordinates
    cheek_blush: float       # 0 .. 1
    wrinkle_prone: float     # scales age lines (skin ageing speed)
    expressiveness: float    # scales all expression controls (people emote differently)
    clothes: RGB


@dataclass(frozen=True)
class Person:
    """One identity of the built-in face world (deterministic from ``(seed, person_id)``)."""

    person_id: int
    name: str      # unique ASCII "Firstname_Lastname", letters only (LFW-style folder name)
    gender: int    # UTKFace code: 0 Male, 1 Female
    race: int      # UTKFace code 0..4 (White, Black, Asian, Indian, Others)
    traits: Traits


# --- names ------------------------------------------------------------------------------
_FIRST = (
    ("Adam", "Alan", "Bruno", "Carlos", "Chen", "Daniel", "David", "Diego", "Emil", "Felix",
     "Hamid", "Hiro", "Ivan", "Jamal", "Jonas", "Kenji", "Kofi", "Luca", "Marco", "Mateo",
     "Omar", "Oscar", "Pavel", "Rahul", "Ravi", "Samuel", "Tariq", "Tomas", "Victor", "Wei",
     "Yusuf", "Arjun", "Kwame", "Liam", "Noah", "Peter", "Ali", "Andre", "Boris", "Hugo"),
    ("Aisha", "Alice", "Amara", "Ana", "Chloe", "Daria", "Elena", "Emma", "Fatima", "Grace",
     "Hana", "Ines", "Julia", "Kim", "Lea", "Lina", "Maya", "Mei", "Nadia", "Nina",
     "Olga", "Priya", "Rosa", "Sara", "Sofia", "Tara", "Yuki", "Zara", "Ada", "Clara",
     "Eva", "Ingrid", "Kavya", "Leila", "Marta", "Naomi", "Paula", "Rina", "Selin", "Vera"),
)
_SYLLABLES = (
    "ba", "be", "bo", "da", "de", "do", "fa", "fe", "ga", "go", "ha", "he", "ka", "ke", "ki", "ko",
    "la", "le", "li", "lo", "ma", "me", "mi", "mo", "na", "ne", "ni", "no", "pa", "pe", "ra", "re",
    "ri", "ro", "sa", "se", "si", "so", "ta", "te", "ti", "to", "va", "ve", "vi", "za", "zo", "lu",
    "mu", "nu", "ru", "su", "tu", "ber", "dan", "gar", "len", "mar", "nor", "ran", "sen", "tor",
    "vik", "wen",
)
_NAME_SPACE = len(_SYLLABLES) ** 3  # ids below this get 3-syllable surnames


def _surname(seed: int, person_id: int) -> str:
    """An injective surname: person ids are scrambled by a seed-dependent bijection and
    written in base-64 syllables, so two ids of one seed never share a surname."""
    n = _NAME_SPACE
    if person_id < n:
        a = 1 + 2 * ((seed * 2654435761 + 12345) % (n // 2))  # odd -> invertible mod 2**18
        code = (a * person_id + seed * 40503 + 98765) % n
        digits = 3
    else:  # longer names for huge ids; their length keeps them apart from the short ones
        code, digits = person_id, 4
        while len(_SYLLABLES) ** digits <= code:
            digits += 1
    syl = []
    for _ in range(digits):
        code, r = divmod(code, len(_SYLLABLES))
        syl.append(_SYLLABLES[r])
    return "".join(syl).capitalize()


# --- trait distributions -----------------------------------------------------------------
# Skin tones (RGB) per race group: each group is a *mixture* over a shared palette,
# so tones overlap between groups.
_SKIN_PALETTE = np.array([
    [250, 214, 190], [238, 196, 166], [226, 180, 146], [206, 156, 118], [186, 132, 96],
    [166, 112, 80], [138, 92, 64], [116, 76, 54], [96, 62, 46],
], dtype=float)
_SKIN_WEIGHTS = {  # White, Black, Asian, Indian, Others
    0: [0.30, 0.34, 0.22, 0.10, 0.04, 0.00, 0.00, 0.00, 0.00],
    1: [0.00, 0.00, 0.00, 0.02, 0.06, 0.17, 0.30, 0.28, 0.17],
    2: [0.14, 0.34, 0.32, 0.15, 0.05, 0.00, 0.00, 0.00, 0.00],
    3: [0.00, 0.02, 0.08, 0.22, 0.30, 0.24, 0.11, 0.03, 0.00],
    4: [0.04, 0.10, 0.18, 0.22, 0.20, 0.14, 0.08, 0.03, 0.01],
}
_HAIR_PALETTE = np.array([
    [22, 18, 16], [46, 32, 24], [84, 56, 36], [128, 90, 56], [176, 134, 82], [214, 182, 120],
    [150, 66, 34],
], dtype=float)  # black, dark brown, brown, light brown, dark blond, blond, red
_HAIR_WEIGHTS = {
    0: [0.10, 0.26, 0.26, 0.15, 0.10, 0.07, 0.06],
    1: [0.78, 0.18, 0.04, 0.00, 0.00, 0.00, 0.00],
    2: [0.74, 0.22, 0.04, 0.00, 0.00, 0.00, 0.00],
    3: [0.66, 0.28, 0.06, 0.00, 0.00, 0.00, 0.00],
    4: [0.38, 0.32, 0.18, 0.06, 0.03, 0.02, 0.01],
}
_IRIS_PALETTE = np.array([
    [46, 30, 22], [88, 56, 34], [110, 84, 48], [70, 96, 60], [70, 110, 150], [110, 140, 170],
], dtype=float)  # dark brown, brown, hazel, green, blue, grey-blue
_IRIS_WEIGHTS = {
    0: [0.10, 0.30, 0.18, 0.12, 0.20, 0.10],
    1: [0.72, 0.26, 0.02, 0.00, 0.00, 0.00],
    2: [0.70, 0.28, 0.02, 0.00, 0.00, 0.00],
    3: [0.55, 0.38, 0.05, 0.02, 0.00, 0.00],
    4: [0.35, 0.35, 0.14, 0.06, 0.06, 0.04],
}
# Mean shifts per race group of a few shape traits (standard deviations are larger
# than the gaps between groups): (eye_open, nose_width, lip fullness, face_width, curl prob)
_RACE_SHAPE = {
    0: (0.44, 1.00, 1.00, 0.460, 0.10),
    1: (0.46, 1.22, 1.28, 0.470, 0.70),
    2: (0.35, 1.06, 1.02, 0.480, 0.04),
    3: (0.44, 1.08, 1.08, 0.460, 0.12),
    4: (0.42, 1.08, 1.10, 0.470, 0.25),
}
_CLOTHES = np.array([
    [40, 60, 110], [150, 30, 40], [40, 40, 45], [230, 230, 225], [60, 110, 70], [200, 150, 60],
    [110, 80, 140], [90, 90, 95], [30, 120, 150], [220, 120, 100],
], dtype=float)


def _mix_colour(rng: np.random.Generator, palette: np.ndarray, weights, jitter: float) -> RGB:
    w = np.asarray(weights, dtype=float)
    i = int(rng.choice(len(palette), p=w / w.sum()))
    j = min(i + 1, len(palette) - 1)
    t = rng.uniform(0.0, 1.0) * (1.0 if j != i else 0.0) * 0.6  # blend toward a neighbour
    col = palette[i] * (1 - t) + palette[j] * t
    col = col + rng.normal(0.0, jitter, 3)
    return tuple(float(c) for c in np.clip(col, 0, 255))


def _hair_style(rng: np.random.Generator, gender: int, curly_p: float) -> int:
    if rng.uniform() < curly_p * (0.6 if gender == 0 else 0.5):
        return HAIR_STYLES.index("curly")
    if gender == 0:
        p = {"buzz": 0.25, "short": 0.40, "side_part": 0.25, "bob": 0.04, "long": 0.04, "bun": 0.02}
    else:
        p = {"buzz": 0.02, "short": 0.06, "side_part": 0.08, "bob": 0.26, "long": 0.42, "bun": 0.16}
    names = list(p)
    probs = np.array([p[n] for n in names])
    return HAIR_STYLES.index(names[int(rng.choice(len(names), p=probs / probs.sum()))])


def _check_code(value, name: str, vocabulary) -> None:
    if value is not None and (not isinstance(value, (int, np.integer)) or not 0 <= value < len(vocabulary)):
        raise InvalidInputError(
            f"{name}={value!r} is not a UTKFace code; use an int in 0..{len(vocabulary) - 1} "
            f"({', '.join(f'{i} {v}' for i, v in enumerate(vocabulary))}) or None to sample it")


def sample_person(seed: int, person_id: int, *, gender: int | None = None,
                  race: int | None = None) -> Person:
    """Draw the person ``person_id`` of world ``seed`` (deterministic, RGB colours).

    ``gender`` / ``race`` (UTKFace codes) may be fixed; otherwise they are sampled
    (gender 50/50, race roughly as in UTKFace: White 42%, Black 19%, Asian 15%,
    Indian 17%, Others 7%).  The surname alone is unique per ``(seed, person_id)``; the
    first name follows the gender.
    """
    if not isinstance(person_id, (int, np.integer)) or person_id < 0:
        raise InvalidInputError(f"person_id={person_id!r} must be a non-negative int")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InvalidInputError(f"seed={seed!r} must be a non-negative int")
    _check_code(gender, "gender", GENDERS)
    _check_code(race, "race", RACES)
    rng = np.random.default_rng([int(seed), int(person_id), 0xFACE])
    g_drawn = int(rng.uniform() < 0.5)
    r_drawn = int(rng.choice(5, p=[0.42, 0.19, 0.15, 0.17, 0.07]))
    g = g_drawn if gender is None else int(gender)
    r = r_drawn if race is None else int(race)
    first = _FIRST[g][int(rng.integers(len(_FIRST[g])))]
    name = f"{first}_{_surname(int(seed), int(person_id))}"

    male = g == 0
    eye_open0, nose0, lips0, width0, curl_p = _RACE_SHAPE[r]
    n = rng.normal
    skin = _mix_colour(rng, _SKIN_PALETTE, _SKIN_WEIGHTS[r], 6.0)
    hair_col = _mix_colour(rng, _HAIR_PALETTE, _HAIR_WEIGHTS[r], 5.0)
    # eyebrows and lashes follow the hair colour, a bit darker
    n_moles = int(rng.poisson(1.2))
    moles = tuple(
        (float(rng.uniform(-0.32, 0.32)), float(rng.uniform(-0.3, 0.38)), float(rng.uniform(0.008, 0.016)))
        for _ in range(n_moles))
    lip_base = np.array(skin) * np.array([0.86, 0.62, 0.62]) + np.array([28, 4, 8])
    if not male:
        lip_base = lip_base * (1 - 0.25 * rng.uniform()) + np.array([150, 40, 60]) * 0.25 * rng.uniform()
    traits = Traits(
        face_width=float(np.clip(n(width0 - (0.012 if not male else 0.0), 0.022), 0.41, 0.53)),
        jaw_width=float(np.clip(n(0.80 if male else 0.72, 0.06), 0.58, 0.95)),
        jaw_square=float(np.clip(n(2.7 if male else 2.2, 0.35), 1.6, 3.6)),
        chin_length=float(np.clip(n(1.0, 0.06), 0.85, 1.15)),
        skin=skin,
        eye_size=float(np.clip(n(0.168 if male else 0.176, 0.012), 0.14, 0.205)),
        eye_open=float(np.clip(n(eye_open0, 0.05), 0.26, 0.6)),
        eye_spacing=float(np.clip(n(0.195, 0.011), 0.165, 0.225)),
        eye_tilt=float(np.clip(n(0.02 if r == 2 else 0.0, 0.02), -0.04, 0.06)),
        iris=_mix_colour(rng, _IRIS_PALETTE, _IRIS_WEIGHTS[r], 8.0),
        brow_thickness=float(np.clip(n(0.036 if male else 0.025, 0.007), 0.014, 0.055)),
        brow_height=float(np.clip(n(0.0 if male else 0.012, 0.012), -0.025, 0.04)),
        brow_arch=float(np.clip(n(0.5 if male else 0.8, 0.25), 0.0, 1.4)),
        nose_length=float(np.clip(n(1.0 if male else 0.95, 0.07), 0.8, 1.2)),
        nose_width=float(np.clip(n(nose0 * (1.04 if male else 0.96), 0.09), 0.75, 1.5)),
        mouth_width=float(np.clip(n(1.0, 0.07), 0.82, 1.2)),
        lip_upper=float(np.clip(n(lips0 * (0.92 if male else 1.08), 0.14), 0.6, 1.7)),
        lip_lower=float(np.clip(n(lips0 * (0.95 if male else 1.1), 0.14), 0.6, 1.7)),
        lip_color=tuple(float(c) for c in np.clip(lip_base, 0, 255)),
        ear_size=float(np.clip(n(1.0, 0.1), 0.75, 1.3)),
        ear_out=float(np.clip(n(1.0, 0.25), 0.4, 1.7)),
        hair_style=_hair_style(rng, g, curl_p),
        hair_color=hair_col,
        hairline=float(np.clip(n(0.0, 0.025), -0.06, 0.06)),
        balding=float(np.clip(n(0.45, 0.3), 0.0, 1.0)) if male else float(np.clip(n(0.05, 0.05), 0, 0.2)),
        grey_onset=float(np.clip(n(55.0, 9.0), 32.0, 80.0)),
        facial_hair=int(rng.choice(len(FACIAL_HAIR), p=[0.5, 0.18, 0.08, 0.08, 0.16])) if male else 0,
        freckles=float(rng.uniform(0.3, 1.0)) if (rng.uniform() < (0.25 if skin[0] > 225 else 0.05)) else 0.0,
        moles=moles,
        cheek_blush=float(np.clip(n(0.25 if male else 0.45, 0.2), 0.0, 1.0)),
        wrinkle_prone=float(np.clip(n(1.0, 0.18), 0.6, 1.5)),
        expressiveness=float(np.clip(n(1.0, 0.1), 0.75, 1.25)),
        clothes=_mix_colour(rng, _CLOTHES, np.ones(len(_CLOTHES)), 18.0),
    )
    return Person(person_id=int(person_id), name=name, gender=g, race=r, traits=traits)


def sample_people(seed: int, n: int, start_id: int = 0) -> list[Person]:
    """``n`` people with consecutive ids ``start_id .. start_id + n - 1`` of world ``seed``."""
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise InvalidInputError(f"n={n!r} must be a non-negative int (number of people)")
    return [sample_person(seed, start_id + i) for i in range(int(n))]

"""The expression table of the face world: the 8 AffectNet emotions as facial action controls.

An emotion is drawn through *facial action controls* (loosely FACS action units:
brow raise / lower, lid raise / tighten, nose wrinkle, lip-corner pull / depress, lip
stretch, jaw drop ...), each 0 relaxed .. 1 apex, scaled by an ``intensity`` in [0, 1]
and by the person's expressiveness (:func:`expression_controls`).
"""
from __future__ import annotations

from facelab.errors import InvalidInputError
from facelab.labels import EMOTIONS_8
from facelab.synth.pen import as_number

#: Names of the facial action controls (loosely FACS action units; 0 relaxed, 1 apex).
CONTROLS = (
    "brow_inner_raise",     # AU1
    "brow_outer_raise",     # AU2
    "brow_lower",           # AU4: brows down and together
    "lid_raise",            # AU5: upper lid up, white shows above the iris
    "lid_droop",            # upper lid down (sad, tired)
    "lid_tighten",          # AU7: lower lid up, narrow eyes
    "cheek_raise",          # AU6: cheeks up, lower lids pushed up, crow's feet
    "nose_wrinkle",         # AU9
    "upper_lip_raise",      # AU10
    "lip_corner_pull",      # AU12: smile, both sides
    "lip_corner_one_side",  # AU12/14 on one side only (contempt)
    "lip_corner_depress",   # AU15
    "chin_raise",           # AU17
    "lip_stretch",          # AU20
    "lip_press",            # AU23/24
    "jaw_drop",             # AU26/27
)

#: Emotion name (``facelab.labels.EMOTIONS_8``) -> action controls at the apex (intensity 1).
#: Neighbouring classes share controls, so that they are confusable as in real data:
#: Fear/Surprise (raised brows and lids, open mouth; Fear adds brows drawn together and a
#: slight lip stretch), Anger/Disgust (lowered brows, tight lids; Anger presses the lips,
#: Disgust wrinkles the nose and raises the upper lip), Contempt/Neutral/Happiness (one lip
#: corner up).  Format 4 (``writers.FORMAT_VERSION``) made Fear and Disgust closer to their
#: neighbours and further from Happiness, whose smile and teeth they used to share, and
#: strengthened Sadness and Anger, which a small network mixed up with Neutral (it also
#: draws the lip-corner depressor and Contempt's one-sided corner more strongly).
EXPRESSIONS: dict[str, dict[str, float]] = {
    "Neutral": {},
    "Happiness": {"cheek_raise": 0.8, "lid_tighten": 0.25, "lip_corner_pull": 1.0, "jaw_drop": 0.35},
    "Sadness": {"brow_inner_raise": 1.0, "brow_lower": 0.5, "lid_droop": 0.8,
                "lip_corner_depress": 1.0, "chin_raise": 0.9},
    "Surprise": {"brow_inner_raise": 0.9, "brow_outer_raise": 1.0, "lid_raise": 0.85, "jaw_drop": 1.0},
    "Fear": {"brow_inner_raise": 1.0, "brow_outer_raise": 0.85, "brow_lower": 0.25, "lid_raise": 1.0,
             "lip_stretch": 0.25, "jaw_drop": 0.8},
    "Anger": {"brow_lower": 1.0, "lid_tighten": 0.7, "lid_raise": 0.5, "lip_press": 1.0,
              "chin_raise": 0.3, "nose_wrinkle": 0.15, "lip_corner_depress": 0.2},
    "Disgust": {"nose_wrinkle": 1.0, "upper_lip_raise": 0.6, "brow_lower": 1.0, "lid_tighten": 0.7,
                "lip_corner_depress": 0.5, "chin_raise": 0.3},
    "Contempt": {"lip_corner_one_side": 1.0, "lid_tighten": 0.15},
}
assert set(EXPRESSIONS) == set(EMOTIONS_8)


def expression_controls(emotion: str, intensity: float = 1.0, expressiveness: float = 1.0) -> dict[str, float]:
    """All action controls for ``emotion``: apex table x intensity x expressiveness, clipped to 1."""
    if emotion not in EXPRESSIONS:
        raise InvalidInputError(f"emotion={emotion!r} is unknown; use one of {', '.join(EMOTIONS_8)}")
    k = as_number(intensity)
    if not 0.0 <= k <= 1.0:
        raise InvalidInputError(f"intensity={intensity!r} must be a number in [0, 1]")
    k *= float(expressiveness)
    table = EXPRESSIONS[emotion]
    return {c: min(1.0, table.get(c, 0.0) * k) for c in CONTROLS}

"""The built-in face world: people, a parametric face renderer and scenes (RGB, deterministic).

See docs/face-world.md: identity, age, gender, race group, expression and nuisance
are independent factors of every rendered face, and real MTCNN detects the faces.
"""
from facelab.synth.people import FACIAL_HAIR, HAIR_STYLES, Person, Traits, sample_people, sample_person
from facelab.synth.render import (
    CONTROLS,
    EXPRESSIONS,
    Nuisance,
    RenderedFace,
    apply_camera,
    expression_controls,
    face_box,
    paint_face,
    render_background,
    render_face,
    sample_nuisance,
)
from facelab.synth.preview import contact_sheet, save_preview
from facelab.synth.scenes import Scene, render_scene

__all__ = [
    "Person", "Traits", "HAIR_STYLES", "FACIAL_HAIR", "sample_person", "sample_people",
    "CONTROLS", "EXPRESSIONS", "Nuisance", "RenderedFace", "apply_camera", "expression_controls",
    "face_box", "paint_face", "render_background", "render_face", "sample_nuisance",
    "Scene", "render_scene", "contact_sheet", "save_preview",
]

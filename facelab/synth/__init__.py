"""The built-in face world: people, a parametric face renderer and scenes (RGB, deterministic).

See docs/face-world.md: identity, age, gender, race group, expression and nuisance
are independent factors of every rendered face, and real MTCNN detects the faces.

The renderer, by module: ``expressions`` (the expression table), ``shape`` (identity +
age + expression -> face shape), ``pen`` (drawing primitives in face coordinates),
``parts`` and ``hair`` (what is drawn), ``camera`` (light, background, blur, noise) and
``render`` (:func:`paint_face`, :func:`render_face`, :func:`sample_nuisance`).
"""
from facelab.synth.people import FACIAL_HAIR, HAIR_STYLES, Person, Traits, sample_people, sample_person
from facelab.synth.camera import apply_camera, render_background
from facelab.synth.expressions import CONTROLS, EXPRESSIONS, expression_controls
from facelab.synth.render import Nuisance, RenderedFace, face_box, paint_face, render_face, sample_nuisance
from facelab.synth.preview import contact_sheet, save_preview
from facelab.synth.scenes import Scene, render_scene

__all__ = [
    "Person", "Traits", "HAIR_STYLES", "FACIAL_HAIR", "sample_person", "sample_people",
    "CONTROLS", "EXPRESSIONS", "Nuisance", "RenderedFace", "apply_camera", "expression_controls",
    "face_box", "paint_face", "render_background", "render_face", "sample_nuisance",
    "Scene", "render_scene", "contact_sheet", "save_preview",
]

"""Every notebook of the series carries the course's fixed parts (issue 6)."""
from pathlib import Path

import nbformat
import pytest

from facelab.apps.notebooks import colab_badge, colab_install_source

NB_DIR = Path(__file__).resolve().parent.parent / "notebooks"
EXPECTED = ["00_overview_and_data", "01_face_detection_and_crops", "02_identity_pretraining",
            "03_attribute_heads", "04_emotion_finetuning", "05_umap_identity_vs_emotion",
            "06_video_descriptors", "07_upload_and_predict_demo"]
NOTEBOOKS = sorted(NB_DIR.glob("[0-9][0-9]_*.ipynb"))


def test_series_names_are_the_course_names():
    assert {p.stem for p in NOTEBOOKS} <= set(EXPECTED)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_has_badge_install_cell_parameters_and_asserts(path):
    nb = nbformat.read(path, as_version=4)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# ")
    assert colab_badge(path.name) in first.source
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code[0].source == colab_install_source()
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    assert code.index(tagged[0]) == 1, "the parameters cell comes right after the install cell"
    claims = [c for c in code if "claims" in c.metadata.get("tags", [])]
    assert len(claims) == 1 and "assert " in claims[0].source, "one cell tagged 'claims' checks the notebook's claim"
    assert any(c.get("outputs") for c in code), "committed with outputs"

"""Helpers shared by the test modules: one torch thread, and tiny multi-task networks.

Test modules import the plain helpers (``from conftest import TINY, tiny_model``) and ask for
the fixture with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
"""
import pytest
import torch

from facelab.models import MultiTaskNet

TINY = "test_efficientnet"  # a ~100k-parameter timm model made for tests (x has 256 dims)
ALL_HEADS = dict(num_identities=3, emotion_classes=8, gender=True, race=True, age=True)


@pytest.fixture(autouse=True)
def private_facelab_home(tmp_path_factory, monkeypatch):
    """Every test gets its own empty $FACELAB_HOME (model zoo downloads, converted networks) and no
    zoo mirror, so no test reads or writes the user's cache, and none depends on what it holds."""
    monkeypatch.setenv("FACELAB_HOME", str(tmp_path_factory.mktemp("facelab_home")))
    monkeypatch.delenv("FACELAB_ZOO_MIRROR", raising=False)


@pytest.fixture
def one_thread():
    """Small models gain nothing from several threads; on busy shared cores spinning threads slow them down."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def one_thread_module():
    """``one_thread`` for a whole test module (its module fixtures build networks too)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_model(seed=0, *, image_size=32, age_hidden=8, **heads):
    """A MultiTaskNet on the tiny test backbone, built after ``torch.manual_seed(seed)``, in eval
    mode, preprocessing at ``image_size`` px.  ``heads``: MultiTaskNet's head arguments
    (``num_identities=3, gender=True`` ...); none given: all of ALL_HEADS."""
    torch.manual_seed(seed)
    model = MultiTaskNet(TINY, age_hidden=age_hidden, **(heads or ALL_HEADS))
    model.preprocessing.update(image_size=image_size, crop="tight")
    return model.eval()

"""The demo as a web app, in a real browser (issue 6 "Show").

Voila serves notebook 07 on localhost; headless Chromium (Debian's ``chromium``,
driven by Playwright through ``executable_path``) uploads a face-world photo, sees the
annotated photo and a table with a label, uploads a broken file and sees the error
message, then uploads another photo and gets a result again.

Needs ``/usr/bin/chromium`` (``.ci/install-browser.sh``), ``voila`` and ``playwright``;
skipped with the reason when one is missing.  Never downloads a browser.  Screenshots
go to the test's temporary folder (their paths are printed; ``-s`` shows them).
"""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from facelab.labels import EMOTIONS_8

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "07_upload_and_predict_demo.ipynb"
CHROMIUM = Path("/usr/bin/chromium")
AGE = re.compile(r"\b\d+ y\b")  # an age as the app writes it, e.g. "31 y"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: Bounds (seconds): Voila start, the notebook's own run (kernel, imports, model load, its
#: programmatic uploads), and one upload round trip.
SERVER_START_S, NOTEBOOK_RUN_S, UPLOAD_S = 30, 75, 30
pytestmark = pytest.mark.slow  # a Voila server, a kernel and a browser

if not CHROMIUM.is_file():
    pytest.skip(f"{CHROMIUM} is missing: run .ci/install-browser.sh (apt-get install chromium)",
                allow_module_level=True)
pytest.importorskip("voila", reason="voila is not installed: pip install -e '.[dev]'")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: pip install -e '.[dev]'")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"voila exited early with code {proc.returncode}")
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"voila did not listen on port {port} within {timeout} s")


def stop(proc: subprocess.Popen) -> None:
    """Terminate Voila and its kernel (they run in their own process group)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory):
    """A cache holding the notebook's tiny demo model, trained briefly here, so that the
    page does not spend its time training (the notebook finds it and loads it)."""
    from facelab.checkpoints import save_checkpoint
    from facelab.apps.demo import TINY_BACKBONE, tiny_model_path, train_tiny_model

    cache = tmp_path_factory.mktemp("models")
    model, info = train_tiny_model(backbone=TINY_BACKBONE, image_size=48, n_faces=32, seconds=3, seed=0)
    save_checkpoint(model, tiny_model_path(cache, backbone=TINY_BACKBONE, image_size=48, seed=0),
                    extra_config={"demo_training": info})
    return cache


@pytest.fixture(scope="module")
def voila_url(model_cache, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("voila") / "voila.log"
    env = dict(os.environ, FACELAB_MODELS=str(model_cache), PYTHONUNBUFFERED="1")
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "voila", "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1",
             "--show_tracebacks=True", str(NOTEBOOK)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
    try:
        wait_for_port(port, proc, SERVER_START_S)
        yield f"http://127.0.0.1:{port}/"
    except Exception:
        print(log.read_text(errors="replace")[-4000:])
        raise
    finally:
        stop(proc)


@pytest.fixture()
def photos(tmp_path):
    """Two face-world photos (PNG, JPEG) and a broken JPEG (the first 1.5 kB of a real one)."""
    from PIL import Image

    from facelab.synth import render_face, sample_person

    paths = {}
    for key, (pid, emotion, fmt) in {"first": (11, "Surprise", "PNG"), "third": (12, "Happiness", "JPEG")}.items():
        photo = render_face(sample_person(0, pid), age=30.0, emotion=emotion, size=224)
        paths[key] = tmp_path / f"upload_{key}.{fmt.lower().replace('jpeg', 'jpg')}"
        Image.fromarray(photo.image).save(paths[key], format=fmt)
    paths["broken"] = tmp_path / "broken_download.jpg"
    paths["broken"].write_bytes(paths["third"].read_bytes()[:1500])
    return paths


def upload(page, path: Path) -> None:
    """Click the app's upload button and choose ``path`` in the file dialog."""
    with page.expect_file_chooser(timeout=UPLOAD_S * 1000) as chooser:
        page.click(".facelab-demo .facelab-upload")
    chooser.value.set_files(str(path))


def status_for(page, kind: str, name: str):
    """Wait until the status line reports ``kind`` (ok / error) for file ``name``."""
    locator = page.locator(f".facelab-status .facelab-status-{kind}", has_text=name)
    locator.wait_for(timeout=UPLOAD_S * 1000)
    return locator.inner_text()


def box_pixels(png: bytes) -> int:
    """How many pixels of a screenshot have the colour of the face boxes and labels."""
    import io

    from PIL import Image

    from facelab.apps.annotate import BOX_COLOUR

    arr = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    return int((np.abs(arr - np.array(BOX_COLOUR)) < 12).all(axis=-1).sum())


@pytest.mark.timeout(240)
def test_upload_photo_then_broken_file_then_photo_in_chromium(voila_url, photos, tmp_path):
    page_errors = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 1400})
            page.on("pageerror", lambda exc: page_errors.append(str(exc)))
            page.goto(voila_url, timeout=NOTEBOOK_RUN_S * 1000, wait_until="domcontentloaded")
            # The notebook runs top to bottom first (its own uploads and checks); its last
            # output is the summary line.  Then the page is ours.
            page.get_by_text("FACELAB_SUMMARY").wait_for(timeout=NOTEBOOK_RUN_S * 1000)
            page.locator(".facelab-demo .facelab-upload").wait_for(timeout=UPLOAD_S * 1000)  # widgets rendered
            assert page.locator(".facelab-demo").count() == 1
            # The page opens with the app: it stands above the notebook's explanation.
            explanation = page.get_by_role("heading", name="How it works")
            assert page.locator(".facelab-demo").bounding_box()["y"] < explanation.bounding_box()["y"]
            # Only face-world networks here: the domain-shift notice is shown.
            notice = page.locator(".facelab-demo .facelab-notice")
            assert "Trained on drawn faces" in notice.inner_text() and notice.is_visible()

            upload(page, photos["first"])
            text = status_for(page, "ok", photos["first"].name)
            assert f"{photos['first'].name}: 1 face found" in text
            output = page.locator(".facelab-demo .facelab-output")
            img = output.locator("img")
            img.wait_for(timeout=UPLOAD_S * 1000)
            assert img.evaluate("el => el.complete && el.naturalWidth") == 480  # DISPLAY_SIDE of the notebook
            table = output.locator("table").inner_text()
            assert any(e in table for e in EMOTIONS_8) and not AGE.search(table)  # face-world age is hidden ...
            page.locator(".facelab-demo .facelab-show-attributes input").check()  # ... until the box is ticked
            page.locator(".facelab-demo .facelab-output table", has_text=AGE).wait_for(timeout=UPLOAD_S * 1000)
            assert box_pixels(img.screenshot()) > 500  # the box and the label band are drawn
            page.screenshot(path=str(tmp_path / "1_photo.png"), full_page=True)

            upload(page, photos["broken"])
            text = status_for(page, "error", photos["broken"].name)
            assert text.lstrip("✖ ").startswith(f"Not a readable image. {photos['broken'].name}:")
            assert "truncated" in text or "corrupt" in text
            assert output.locator("img").count() == 0 and "Traceback" not in page.content()
            page.screenshot(path=str(tmp_path / "2_broken.png"), full_page=True)

            upload(page, photos["third"])
            text = status_for(page, "ok", photos["third"].name)
            assert f"{photos['third'].name}: 1 face found" in text
            output.locator("img").wait_for(timeout=UPLOAD_S * 1000)
            assert any(e in output.locator("table").inner_text() for e in EMOTIONS_8)
            page.screenshot(path=str(tmp_path / "3_photo_again.png"), full_page=True)
            print(f"screenshots in {tmp_path}")
        finally:
            browser.close()
    assert not page_errors, page_errors

"""Upload a photo and see what the multi-task network of Fig. 1 says about every face.

:class:`FaceDemo` is a small ipywidgets app (shown in notebook 07 and served as a web
page by Voila)::

    from facelab.apps.demo import FaceDemo, default_models
    app = FaceDemo(default_models())
    app.widget            # display it in Jupyter / Voila

It has a file upload button, a model choice, a status line, and an ``Output`` area
showing the photo with a box and a label per face plus a table (emotion with its top-3
probabilities, age, gender, race).  At inference the network of Fig. 1 runs once per
face: MTCNN finds the tight face box, the shared backbone computes the feature vector
``x``, and the heads read emotion, age (eq. 1, the age expectation), gender and race
from it.  :class:`facelab.inference.analyze.FaceAnalyzer` does that work; this module is
the widget only.  The models it offers come from :mod:`facelab.apps.demo_models`, uploads are
decoded by :mod:`facelab.apps.uploads`, the result is drawn by :mod:`facelab.apps.annotate`
and tabulated by :mod:`facelab.apps.results_view`.

Bad input never breaks the app: an empty, truncated, huge or unsupported file, or a
photo without a face, gives a clear message on the status line (no traceback) and the
next upload works as before.  Images are RGB everywhere.
"""
from __future__ import annotations

import base64
import html
import io
import time
from pathlib import Path

import numpy as np

from facelab.apps.annotate import DEFAULT_DISPLAY_SIDE, annotate
# Re-exported: notebook 07 and the tests import these from here.
from facelab.apps.demo_models import (  # noqa: F401
    ATTRIBUTE_HEADS, FACE_WORLD_NOTICE, PAPER_MODEL, TINY_BACKBONE, CallableAnalyzer, CheckpointAnalyzer, DemoModels,
    analyzer_from_checkpoint, as_analyzer, course_checkpoints, default_cache_dir, default_models, face_world_faces,
    find_checkpoints, paper_model_available, tiny_model_path, train_tiny_model, untrained_model)
from facelab.apps.results_view import (  # noqa: F401
    emotion_columns, face_label, faces_table, has_box, row_error, top_emotions, without_heads)
from facelab.apps.uploads import decode_upload, error_headline, first_video_frame  # noqa: F401
from facelab.data.io import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from facelab.errors import FacelabError, InvalidInputError

#: Largest upload the demo accepts, in megabytes (1 MB = 10**6 bytes).  Jupyter's
#: websocket refuses messages over 10 MiB unless configured, so larger files would not
#: reach the kernel anyway.
DEFAULT_MAX_UPLOAD_MB = 10.0
#: File types offered by the browser's file dialog.
ACCEPT = ",".join(["image/*", "video/*", *sorted(IMAGE_EXTENSIONS), *sorted(VIDEO_EXTENSIONS)])

# Status kinds -> (CSS colour, symbol) of the status line.
_STATUS_STYLE = {
    "ready": ("#444444", "&#8226;"),
    "busy": ("#444444", "&#8226;"),
    "ok": ("#1b7a1b", "&#10004;"),
    "warning": ("#a15c00", "&#9888;"),
    "error": ("#b00020", "&#10006;"),
}


def _png_base64(pil_image) -> str:
    buf = io.BytesIO()
    pil_image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


# --- the app ------------------------------------------------------------------------
class FaceDemo:
    """Upload-and-predict app: a photo in, boxes + labels + a table out.

    Parameters
    ----------
    models : dict
        ``{name: model}`` where a model is a :class:`facelab.inference.analyze.FaceAnalyzer`
        (anything with ``.analyze(images, names=None) -> DataFrame``), a callable with
        that contract, or the path of a facelab checkpoint (loaded on first use).  A
        :class:`DemoModels` dict may carry a note per model, shown under the controls.
    max_upload_mb : float
        Larger uploads are refused with a message before decoding.
    max_pixels : int
        Images declaring more pixels are refused before decoding (decompression bombs).
    display_side : int
        Longer side, in pixels, of the annotated photo shown.

    Attributes
    ----------
    widget : ipywidgets.VBox
        The root container: display it.
    upload, model_choice, status_line, output : widgets
        The file upload, the model ``Dropdown``, the status ``HTML`` and the result ``Output``.
    status : str
        Plain text of the status line; ``status_kind`` is one of
        ``ready, ok, warning, error``.
    last_result : pandas.DataFrame or None
        The analyze table of the last successful upload (None after an error).
    last_image, last_table
        The annotated PIL image and the shown table of the last successful upload.
    """

    def __init__(self, models: dict, *, max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
                 max_pixels: int | None = None, display_side: int = DEFAULT_DISPLAY_SIDE,
                 title: str = "facelab: emotion, age, gender and race of every face in a photo"):
        import ipywidgets as widgets  # the [course] extra: loaded when an app is made

        if not models:
            raise InvalidInputError("FaceDemo needs at least one model: {name: FaceAnalyzer | callable | checkpoint path}")
        self.models = {str(name): as_analyzer(spec) for name, spec in models.items()}
        self.notes = {str(k): v for k, v in getattr(models, "notes", {}).items()}
        self.max_upload_mb = float(max_upload_mb)
        self.max_pixels = int(max_pixels or DEFAULT_MAX_PIXELS)
        self.display_side = int(display_side)
        self.last_result = None
        self.last_image = None
        self.last_table = None
        #: The last upload, decoded (``H x W x 3`` RGB), or None.
        self.last_upload_image = None
        self.history: list[tuple[str, str]] = []  # (file name, status kind) per upload
        self._last_upload: tuple[str, bytes] | None = None

        self.upload = widgets.FileUpload(accept=ACCEPT, multiple=False, description="Upload photo",
                                         button_style="primary")
        self.model_choice = widgets.Dropdown(options=list(self.models), description="Model:",
                                             layout=widgets.Layout(width="auto"))
        self.note_line = widgets.HTML()
        #: The domain-shift notice (visible while the chosen emotion network is a face-world one).
        self.notice = widgets.HTML()
        #: Face-world age / gender / race are hidden until this box is ticked.
        self.show_attributes = widgets.Checkbox(
            value=False, indent=False, layout=widgets.Layout(width="auto"),
            description="show age, gender and race from face-world networks (not meaningful on real photos)")
        self.status_line = widgets.HTML()
        self.output = widgets.Output(layout=widgets.Layout(min_height="40px"))
        self.widget = widgets.VBox([
            widgets.HTML(f"<h3 style='margin:4px 0'>{html.escape(title)}</h3>"),
            widgets.HBox([self.upload, self.model_choice]),
            self.notice,
            self.note_line,
            self.show_attributes,
            self.status_line,
            self.output,
        ])
        self.widget.add_class("facelab-demo")
        self.status_line.add_class("facelab-status")
        self.upload.add_class("facelab-upload")
        self.model_choice.add_class("facelab-model")
        self.output.add_class("facelab-output")
        self.notice.add_class("facelab-notice")
        self.show_attributes.add_class("facelab-show-attributes")

        self.upload.observe(self._on_upload, names="value")
        self.model_choice.observe(self._on_model_change, names="value")
        self.show_attributes.observe(self._on_model_change, names="value")
        self._show_note()
        self._set_status("ready", f"Upload a photo (JPEG, PNG, ...; up to {self.max_upload_mb:g} MB).")

    # -- public ----------------------------------------------------------------------
    @property
    def status(self) -> str:
        """Plain text of the status line."""
        return self._status_text

    @property
    def status_kind(self) -> str:
        return self._status_kind

    @property
    def model_name(self) -> str:
        return self.model_choice.value

    @property
    def face_world_heads(self) -> list[str]:
        """The heads of the chosen model that come from face-world networks."""
        return list(getattr(self.models[self.model_name], "face_world_heads", []) or [])

    @property
    def hidden_heads(self) -> list[str]:
        """Face-world age / gender / race, hidden unless ``show_attributes`` is ticked."""
        if self.show_attributes.value:
            return []
        return [h for h in self.face_world_heads if h in ATTRIBUTE_HEADS]

    def handle_upload(self, name: str, content) -> object:
        """Decode ``content`` (the uploaded bytes of file ``name``), run the selected model
        and show the result.  Returns the analyze DataFrame, or None when the file could
        not be used (the reason is on the status line).  Never raises."""
        name = str(name or "upload")
        content = bytes(content)
        self._last_upload = (name, content)
        self._set_status("busy", f"Analysing {name} with {self.model_name} ...")
        try:
            result = self._run(name, content)
        except Exception as exc:  # noqa: BLE001 - the app must survive any bad upload
            self._show_error(name, exc)
            return None
        return result

    def upload_file(self, path) -> object:
        """Convenience for notebooks: ``handle_upload`` with a file from disk."""
        path = Path(path)
        return self.handle_upload(path.name, path.read_bytes())

    # -- widget callbacks ------------------------------------------------------------
    def _on_upload(self, change) -> None:
        files = change["new"]
        if not files:
            return  # our own reset below, or an empty selection
        for item in files:
            self.handle_upload(item["name"], item["content"])
        self.upload.value = ()  # free the bytes; lets the same file be uploaded again

    def _on_model_change(self, change) -> None:
        self._show_note()
        if self._last_upload is not None:
            self.handle_upload(*self._last_upload)

    # -- steps -----------------------------------------------------------------------
    def _run(self, name: str, content: bytes):
        t0 = time.perf_counter()
        image = self._decode(name, content)
        self.last_upload_image = image
        df = self.models[self.model_name].analyze([image], names=[name])
        seconds = time.perf_counter() - t0
        errors = [e for e in (row_error(row) for _, row in df.iterrows()) if e]
        if errors and not any(has_box(row) for _, row in df.iterrows()):
            raise _AnalyzeRowError(errors[0])
        self._show_result(name, image, df, seconds)
        return df

    def _decode(self, name: str, content: bytes) -> np.ndarray:
        """Uploaded bytes -> ``H x W x 3`` uint8 RGB (the first frame for a video file)."""
        return decode_upload(name, content, max_upload_mb=self.max_upload_mb, max_pixels=self.max_pixels)

    # -- showing -----------------------------------------------------------------------
    def _show_result(self, name: str, image: np.ndarray, df, seconds: float) -> None:
        self.last_result = df
        self._show_note()  # a lazily loaded model now knows which of its heads are face-world ones
        shown = without_heads(df, self.hidden_heads)
        self.last_image = annotate(image, shown, display_side=self.display_side)
        self.last_table = faces_table(shown)
        n = len(self.last_table)
        h, w = image.shape[:2]
        outputs = [{
            "output_type": "display_data",
            "data": {"image/png": _png_base64(self.last_image),
                     "text/plain": f"<{name}: {w} x {h} RGB photo with {n} face box(es)>"},
            "metadata": {},
        }]
        if n:
            table_html = self.last_table.to_html(index=False, classes="facelab-table", border=0)
            outputs.append({"output_type": "display_data",
                            "data": {"text/html": table_html, "text/plain": self.last_table.to_string(index=False)},
                            "metadata": {}})
        self.output.outputs = tuple(outputs)
        if n:
            self._set_status("ok", f"{name}: {n} face{'s' if n != 1 else ''} found "
                                   f"({w} x {h} px, model {self.model_name}, {seconds:.1f} s).")
        else:
            self._set_status("warning", f"{name}: no face found in this {w} x {h} photo; "
                                        "try one where the face is larger, frontal and well lit.")

    def _show_error(self, name: str, exc: BaseException) -> None:
        self.last_result = None
        self.last_image = None
        self.last_table = None
        self.output.outputs = ()
        message = str(exc).strip() or type(exc).__name__
        if not message.startswith(name):
            message = f"{name}: {message}"
        self._set_status("error", f"{error_headline(exc)}. {message}")

    def _show_note(self) -> None:
        note = self.notes.get(self.model_name, "")
        self.note_line.value = (f"<div style='color:#a15c00'>&#9888; {html.escape(note)}</div>" if note else "")
        face_world = self.face_world_heads
        self.notice.value = (f"<div style='color:#a15c00;font-weight:bold'>&#9888; {html.escape(FACE_WORLD_NOTICE)}"
                             "</div>" if "emotion" in face_world else "")
        self.show_attributes.layout.display = None if any(h in ATTRIBUTE_HEADS for h in face_world) else "none"

    def _set_status(self, kind: str, text: str) -> None:
        self._status_kind, self._status_text = kind, text
        colour, symbol = _STATUS_STYLE[kind]
        self.status_line.value = (f"<div class='facelab-status-{kind}' style='color:{colour}'>"
                                  f"{symbol} {html.escape(text)}</div>")
        if kind not in ("ready", "busy") and self._last_upload is not None:
            self.history.append((self._last_upload[0], kind))


class _AnalyzeRowError(FacelabError):
    """The analyzer returned only failure rows for the upload (its reason is the message)."""


__all__ = [
    "FaceDemo", "DemoModels", "CallableAnalyzer", "CheckpointAnalyzer", "as_analyzer", "analyzer_from_checkpoint",
    "annotate", "faces_table", "face_label", "emotion_columns", "without_heads", "default_models",
    "paper_model_available", "PAPER_MODEL", "FACE_WORLD_NOTICE", "top_emotions", "error_headline",
    "DEFAULT_MAX_UPLOAD_MB",
]

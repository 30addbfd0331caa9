"""Video clips -> per-frame face features, streamed (docs/method.md, section 7).

The pipeline of the paper for one clip:

1. :func:`iter_frames` decodes the video with PyAV **as a stream** — in a background
   thread that stays a few frames ahead (a bounded queue), never the whole clip in
   memory — and samples every ``k``-th frame or a target frame rate.  Frames are
   ``H x W x 3`` uint8 **RGB** arrays.
2. :func:`video_features` takes the sampled frames in chunks of ``batch_frames``:
   MTCNN detects the faces of the whole chunk at once
   (:func:`facelab.faces.detect_faces`), keeps the **largest face** per frame
   (single-person clips, AFEW) or **all faces** (group clips, VGAF), cuts **tight
   crops** (the detector's box, no margin; :func:`facelab.faces.crop_faces`) and
   runs the emotion CNN's runner on them in batches (:func:`face_network`: torch, or ONNX
   Runtime with ``backend="onnx"``), keeping the penultimate-layer features x.
3. :func:`extract_clip_features` does this for a list of clips with a progress bar
   and an on-disk cache, so re-running a notebook does not recompute anything.

The result per clip is a :class:`ClipFeatures`; :mod:`facelab.inference.pooling` turns it into
the clip descriptor (``clip.descriptor()``).

**Face tracks** (several people): :func:`track_faces` detects every ``detect_every``-th
frame at a working resolution (``detect_size``), follows the faces with a
:class:`facelab.inference.tracking.FaceTracker` and carries them over the frames in between;
:func:`video_tracks` runs the network on every frame's faces and returns a
:class:`ClipTracks`: per person (track) the features, the paper's 4-statistic descriptor
(``track.descriptor()``) and the group descriptor over people, then frames
(``clip.group_descriptor()``).

The pipeline lives in :mod:`facelab.inference.clip_features` (steps 1-2),
:mod:`facelab.inference.video_tracks` (face tracks) and :mod:`facelab.inference.feature_cache`
(step 3, and labelled feature sets); this module gathers their names.
"""
from __future__ import annotations

from facelab.data.frames import DEFAULT_MAX_FRAME_PIXELS, DEFAULT_PREFETCH, Frame, iter_frames
from facelab.inference.clip_features import (
    ClipFailure, ClipFeatures, face_features, face_network, model_fingerprint, network_fingerprint, video_features,
)
from facelab.inference.feature_cache import (
    CACHE_VERSION, FeatureSet, clip_cache_key, default_cache_dir, extract_clip_features, load_clip_features,
    load_feature_set, save_clip_features, save_feature_set,
)
from facelab.inference.video_tracks import (
    DEFAULT_CHUNK_FRAMES, DEFAULT_DETECT_SIZE, ClipTracks, FaceTrack, TrackedFrame, check_detect_every, track_faces,
    video_tracks,
)

__all__ = [
    "DEFAULT_DETECT_SIZE", "DEFAULT_CHUNK_FRAMES", "DEFAULT_MAX_FRAME_PIXELS", "DEFAULT_PREFETCH", "CACHE_VERSION",
    "TrackedFrame", "check_detect_every", "track_faces", "FaceTrack", "ClipTracks", "video_tracks",
    "FeatureSet", "save_feature_set", "load_feature_set", "Frame", "iter_frames",
    "ClipFeatures", "ClipFailure", "video_features", "face_features", "face_network", "extract_clip_features",
    "model_fingerprint", "network_fingerprint", "clip_cache_key", "default_cache_dir", "save_clip_features",
    "load_clip_features",
]

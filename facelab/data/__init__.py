"""Input: images and videos (:mod:`~facelab.data.io`, :mod:`~facelab.data.pixels`, :mod:`~facelab.data.frames`),
the real datasets' layouts (one module each in :mod:`~facelab.data.layouts`, gathered by
:mod:`~facelab.data.datasets`) and tight face crops prepared on disk (:mod:`~facelab.data.prepare`).

The first step of the pipeline: image -> faces -> crops -> network -> heads / pooling -> results.
"""

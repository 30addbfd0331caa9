"""The real datasets' on-disk layouts, one module per layout (:mod:`~facelab.data.layouts.vggface2`,
``lfw``, ``utkface``, ``affectnet``, ``afew``, ``vgaf``, ``scenes``), the dataset classes every reader
returns (:mod:`~facelab.data.layouts.dataset`) and the folder helpers they share
(:mod:`~facelab.data.layouts.folders`).  :mod:`facelab.data.datasets` gathers them and dispatches by name."""

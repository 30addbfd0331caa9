"""What people run: the command line (:mod:`~facelab.apps.cli`), the upload-and-predict widget
(:mod:`~facelab.apps.demo`), the tour (:mod:`~facelab.apps.tour`) and the notebooks' helpers
(:mod:`~facelab.apps.notebooks`, :mod:`~facelab.apps.viz`)."""

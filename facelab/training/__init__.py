"""Training and evaluation: the two-stage loop with SAM (:mod:`~facelab.training.train`), the metrics of the
paper's protocols (:mod:`~facelab.training.evaluate`) and the course's cached recipes
(:mod:`~facelab.training.course`)."""

"""Labeling in rounds: a project folder, its rounds, ingesting labels back, and its status.

- :mod:`~huale.project.state`: :class:`Project` (``Project.create`` / ``Project.open``), the
  folder layout, the lock;
- :mod:`~huale.project.labeled`: :class:`LabeledSet`, huale's COCO copy of the labeled set (the
  user's category and image ids kept);
- :mod:`~huale.project.rounds`: :func:`run_round` (train, evaluate, select, export; resumable);
- :mod:`~huale.project.ingest`: :func:`ingest_file`, :func:`ingest_label_studio` (in-memory
  Label Studio export), :func:`ingest_coco`;
- :mod:`~huale.project.status`, :mod:`~huale.project.fit`: the per-round table, the learning
  curve and the fit of how much more is worth labeling.

Library use (e.g. a Label Studio ML backend)::

    from huale.project import Project, ingest_label_studio
    project = Project.open("myproject")
    project.class_names, project.current_round(), project.latest_checkpoint()
    project.labeled_path                      # COCO file of the current labeled set
    report = ingest_label_studio(project, tasks)   # tasks: Label Studio export list
"""

from huale.project.ingest import IngestReport, ingest_coco, ingest_file, ingest_label_studio
from huale.project.labeled import LabeledSet
from huale.project.state import ModelSettings, Project

__all__ = [
    "IngestReport",
    "LabeledSet",
    "ModelSettings",
    "Project",
    "ingest_coco",
    "ingest_file",
    "ingest_label_studio",
]

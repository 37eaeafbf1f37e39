"""Labeling-tool formats: what huale sends to Label Studio and CVAT, and what it reads back.

One module per format and job:

- :mod:`~huale.labeling.labelstudio`: the labeling config (XML) of a class list, and the reader
  of Label Studio's JSON export (``read_label_studio_export(path)``,
  ``parse_label_studio_export(tasks)`` for an export already in memory);
- :mod:`~huale.labeling.coco_export`: COCO / CVAT COCO 1.0 exports (JSON or zip);
- :mod:`~huale.labeling.voc_export`: Pascal VOC XML folders (CVAT's PASCAL VOC 1.1, LabelImg);
- :mod:`~huale.labeling.cvat`: the CVAT COCO 1.0 zip of a round's selection;
- :mod:`~huale.labeling.gallery`: the round's gallery page and contact sheet;
- :mod:`~huale.labeling.urls`: Label Studio image URLs (local-files serving);
- :mod:`~huale.labeling.returned`: :class:`ReturnedImage`, what every reader returns.

Label Studio tasks themselves are written by :func:`huale.selection.export.label_studio_tasks`.
Matching returned images to a project's rounds and merging them is :mod:`huale.project.ingest`.
"""

from huale.labeling.returned import ANNOTATED, SKIPPED, UNLABELED, ReturnedImage

__all__ = ["ANNOTATED", "SKIPPED", "UNLABELED", "ReturnedImage"]

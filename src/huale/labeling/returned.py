"""What a labeling tool gave back for one image, before it is matched to a round and merged.

Every converter (:mod:`huale.labeling.labelstudio`, :mod:`huale.labeling.coco_export`,
:mod:`huale.labeling.voc_export`) turns its tool's export into a list of :class:`ReturnedImage`;
:mod:`huale.labeling.ingest` matches them to the images huale sent and merges them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath

import numpy as np

ANNOTATED = "annotated"
SKIPPED = "skipped"  # skipped or cancelled in the tool: the image stays outstanding
UNLABELED = "unlabeled"  # in the export without any annotation: stays outstanding


@dataclass
class ReturnedImage:
    """One image of an export.

    file_name: the tool's name for the image (a file name or relative path), if any;
    url: the task's image URL (Label Studio ``data.image``), if any; huale_id: the pool image id
    huale put in the task (``data.huale_id``), if the tool kept it; width/height: the image size
    the tool states (None if unknown); boxes: (K, 4) float64 xyxy pixels in that size;
    class_names: K names as the tool wrote them; status: ANNOTATED, SKIPPED or UNLABELED; updated_at: when the
    annotation was last changed (ISO 8601, None if the tool does not say); where: how to find it
    in the export, for messages (e.g. ``"task 12"``).
    """

    where: str
    file_name: str | None = None
    url: str | None = None
    huale_id: str | None = None
    width: float | None = None
    height: float | None = None
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float64))
    class_names: list[str] = field(default_factory=list)
    status: str = ANNOTATED
    updated_at: str | None = None
    rotated_boxes: int = 0  # boxes drawn with a rotation, replaced by their enclosing box

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, np.float64).reshape(-1, 4)
        if len(self.class_names) != len(self.boxes):
            raise ValueError(f"{len(self.boxes)} boxes but {len(self.class_names)} class names")

    @property
    def base_name(self) -> str | None:
        """The file name without folders (from ``file_name``, else from ``url``)."""
        name = self.file_name
        if not name and self.url:
            from huale.labeling.urls import file_name_of_url

            name = file_name_of_url(self.url)
        return PurePosixPath(name.replace("\\", "/")).name if name else None

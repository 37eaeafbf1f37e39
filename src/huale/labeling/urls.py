"""Image references in Label Studio tasks: the local-files URL huale writes, and file names
recovered from the URLs Label Studio exports.

Label Studio serves files from its machine at ``/data/local-files/?d=<path>``, ``<path>`` being
relative to ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT``; it needs
``LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true`` and a "Local files" storage on the project whose
path is a folder above the images, strictly below the document root (Label Studio refuses a
storage path equal to the root). huale's default document root is therefore the folder that
holds the pool folder (:func:`default_document_root`), and the storage path is the pool folder.
Files uploaded through its UI become ``/data/upload/<project>/<8 hex>-<name>``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qs, unquote, urlparse

LOCAL_FILES_PREFIX = "/data/local-files/?d="
_UPLOAD_NAME = re.compile(r"^[0-9a-f]{8}-(.+)$")


def default_document_root(pool_folder: str | Path) -> Path:
    """The document root huale's local-files URLs assume: the folder holding the pool folder
    (absolute, symlinks kept, like the pool's image paths)."""
    return Path(os.path.abspath(pool_folder)).parent


def path_of_url(url: str) -> str:
    """The file path a URL names: the ``d`` parameter of a local-files URL, else the URL path
    (unquoted, posix)."""
    parsed = urlparse(url)
    query = parse_qs(parsed.query)
    if "d" in query and query["d"]:
        return query["d"][0].replace("\\", "/")
    return unquote(parsed.path)


def file_name_of_url(url: str) -> str:
    """The image's file name in ``url``, without Label Studio's upload prefix (``1a2b3c4d-``)."""
    name = PurePosixPath(path_of_url(url)).name
    if "/data/upload/" in url:
        match = _UPLOAD_NAME.match(name)
        if match:
            return match.group(1)
    return name

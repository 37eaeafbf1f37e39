"""Where ``huale serve`` may read a task's image from, and nowhere else.

A Label Studio task names its image in ``data.<field>``. :class:`ImageSource` turns that
reference into a local file, allowing exactly two origins:

1. **The project's pool.** A reference that names a pool image (its huale id, its absolute path
   as listed, or the reference the project's task export wrote for it: a ``/data/local-files/``
   URL or a URL prefix) is answered with that file. Pool files are an allow-list built once from
   the pool listing: a path is looked up as written (after lexical normalisation, ``..`` refused)
   and never resolved against the file system first, so a symlink or ``..`` cannot lead outside.
2. **The configured Label Studio host** (``LABEL_STUDIO_URL``, token ``LABEL_STUDIO_API_KEY``).
   A URL is fetched only when its scheme, host and port equal the configured ones exactly, with
   ``Authorization: Token <key>`` (a legacy token) or ``Bearer <access token>`` (a personal
   access token, exchanged at that host's ``/api/token/refresh/``); a relative URL
   (``/data/upload/...``) is joined to that host.
   Redirects are not followed, the body is capped at ``max_bytes``, and the file must decode as
   an image.

Anything else (another host, ``file:`` or ``data:`` URLs, a path outside the pool) is refused
with :class:`ImageRefused` before any file is opened or any connection is made: no server-side
request forgery.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import posixpath
import ssl
import tempfile
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from huale.errors import HualeError

log = logging.getLogger(__name__)

LABEL_STUDIO_URL_ENV = "LABEL_STUDIO_URL"
LABEL_STUDIO_KEY_ENV = "LABEL_STUDIO_API_KEY"
DEFAULT_MAX_IMAGE_BYTES = 64 * 2**20
DEFAULT_FETCH_TIMEOUT = 30.0
_DEFAULT_PORTS = {"http": 80, "https": 443}


class ImageRefused(HualeError):
    """A task's image reference names neither a pool image nor the Label Studio host."""


class ImageFetchError(HualeError):
    """The Label Studio host did not deliver the image (status, size, not an image)."""


@dataclass(frozen=True)
class LabelStudioHost:
    """The one remote origin images may come from: ``scheme://host:port`` plus its API token."""

    scheme: str
    host: str
    port: int
    base_path: str = ""
    token: str | None = None

    @classmethod
    def parse(cls, url: str, token: str | None = None) -> LabelStudioHost:
        """``http(s)://host[:port][/path]``; a ConfigError-like :class:`HualeError` otherwise."""
        parts = urlsplit(url.strip())
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise HualeError(
                f"{LABEL_STUDIO_URL_ENV}={url!r}: expected http(s)://host[:port], e.g. "
                "http://localhost:8080"
            )
        if parts.username or parts.password or parts.query or parts.fragment:
            raise HualeError(
                f"{LABEL_STUDIO_URL_ENV}={url!r}: give only scheme, host, port and path (the "
                f"token goes in {LABEL_STUDIO_KEY_ENV})"
            )
        try:
            port = parts.port or _DEFAULT_PORTS[parts.scheme]
        except ValueError:
            raise HualeError(f"{LABEL_STUDIO_URL_ENV}={url!r}: invalid port") from None
        return cls(
            scheme=parts.scheme,
            host=parts.hostname.lower(),
            port=port,
            base_path=parts.path.rstrip("/"),
            token=token or None,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LabelStudioHost | None:
        """The host of ``LABEL_STUDIO_URL`` with ``LABEL_STUDIO_API_KEY``; None when unset."""
        environ = os.environ if environ is None else environ
        url = environ.get(LABEL_STUDIO_URL_ENV, "").strip()
        if not url:
            return None
        return cls.parse(url, environ.get(LABEL_STUDIO_KEY_ENV) or None)

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def owns(self, url: str) -> bool:
        """Whether absolute ``url`` has exactly this scheme, host and port."""
        parts = urlsplit(url)
        if parts.scheme.lower() != self.scheme or not parts.hostname:
            return False
        if parts.username or parts.password:
            return False
        try:
            port = parts.port or _DEFAULT_PORTS[self.scheme]
        except ValueError:
            return False
        return parts.hostname.lower() == self.host and port == self.port


@dataclass(frozen=True)
class ResolvedImage:
    """A task's image on local disk. ``pool_id``: the pool image's huale id, None when fetched."""

    path: Path
    pool_id: str | None


class ImageSource:
    """Resolve task image references to local files (see the module docstring).

    pool: huale image id -> file path, as the project lists its pool; references: extra exact
    reference strings (e.g. the URLs the task export wrote) -> huale id; cache_dir: where
    fetched images are kept, named by the hash of their URL.
    """

    def __init__(
        self,
        pool: Mapping[str, Path],
        *,
        references: Mapping[str, str] | None = None,
        label_studio: LabelStudioHost | None = None,
        cache_dir: str | Path | None = None,
        max_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
        timeout: float = DEFAULT_FETCH_TIMEOUT,
    ):
        self.pool = {str(k): Path(v) for k, v in pool.items()}
        self._by_path: dict[str, str] = {}
        for image_id, path in self.pool.items():
            self._by_path[posixpath.normpath(path.absolute().as_posix())] = image_id
        self._by_reference = dict(references or {})
        self.label_studio = label_studio
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.max_bytes = int(max_bytes)
        self.timeout = float(timeout)
        self._token_lock = threading.Lock()
        self._access_token: str | None = None

    def add_references(self, references: Mapping[str, str]) -> None:
        """Register more exact reference strings (reference -> pool image id)."""
        self._by_reference.update(references)

    def pool_image(self, reference: str) -> str | None:
        """The pool id ``reference`` names, or None (nothing is opened)."""
        if reference in self.pool:
            return reference
        if reference in self._by_reference:
            return self._by_reference[reference]
        parts = urlsplit(reference)
        if parts.scheme == "" and reference.startswith("/") and not parts.query:
            normal = _normal(unquote(parts.path))
            if normal is not None:
                return self._by_path.get(normal)
        return None

    def resolve(self, reference: object, *, hint_id: object = None) -> ResolvedImage:
        """The local file of ``reference``; :class:`ImageRefused` / :class:`ImageFetchError`.

        hint_id: the task's ``data.huale_id``: a pool id answers directly (it can only name a
        pool image, so it opens nothing else).
        """
        if isinstance(hint_id, str) and hint_id in self.pool:
            return ResolvedImage(self.pool[hint_id], hint_id)
        if not isinstance(reference, str) or not reference.strip():
            raise ImageRefused(f"the image reference must be a non-empty string, got {reference!r}")
        reference = reference.strip()
        pool_id = self.pool_image(reference)
        if pool_id is not None:
            return ResolvedImage(self.pool[pool_id], pool_id)
        url = self._label_studio_url(reference)
        return ResolvedImage(self._fetch(url), None)

    def _label_studio_url(self, reference: str) -> str:
        """The absolute URL of ``reference`` on the Label Studio host, or ImageRefused."""
        parts = urlsplit(reference)
        ls = self.label_studio
        if parts.scheme in ("http", "https"):
            if ls is None:
                raise ImageRefused(
                    f"image {_short(reference)} is not a pool image and no Label Studio host is "
                    f"configured ({LABEL_STUDIO_URL_ENV}); refused"
                )
            if not ls.owns(reference):
                raise ImageRefused(
                    f"image {_short(reference)} is not on the Label Studio host {ls.origin} "
                    f"({LABEL_STUDIO_URL_ENV}); refused"
                )
            return reference
        if parts.scheme or parts.netloc or not reference.startswith("/"):
            raise ImageRefused(
                f"image {_short(reference)} is neither a pool image nor a Label Studio URL; refused"
            )
        if ls is None:
            raise ImageRefused(
                f"image {_short(reference)} is not a pool image, and a Label Studio path needs "
                f"{LABEL_STUDIO_URL_ENV} to fetch it; refused"
            )
        if reference.startswith("//"):
            raise ImageRefused(f"image {_short(reference)}: network-path references are refused")
        return f"{ls.origin}{ls.base_path}{reference}"

    def _fetch(self, url: str) -> Path:
        """GET ``url`` from the Label Studio host (no redirects, size-capped), cached on disk."""
        from huale.data.images import image_size
        from huale.io import atomic_write_bytes

        ls = self.label_studio
        assert ls is not None and ls.owns(url)
        digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:32]
        folder = self.cache_dir or Path(tempfile.gettempdir()) / "huale-serve-images"
        cached = folder / digest
        if cached.is_file():
            return cached
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        status, location, body = self._get(target, self._authorization())
        if status == 401 and ls.token and _is_jwt(ls.token):
            status, location, body = self._get(target, self._authorization(refresh=True))
        if status != 200:
            detail = f" (redirect to {_short(location)} not followed)" if location else ""
            raise ImageFetchError(f"Label Studio answered {status} for image {_short(url)}{detail}")
        path = atomic_write_bytes(cached, body)
        try:
            image_size(path)  # a header that decodes as an image, or DataError
        except HualeError as exc:
            path.unlink(missing_ok=True)
            raise ImageFetchError(f"image {_short(url)} from Label Studio: {exc}") from None
        return path

    def _authorization(self, *, refresh: bool = False) -> dict[str, str]:
        """The token header: ``Token <key>`` for a legacy token; for a personal access token
        (a JWT refresh token, Label Studio 1.22+), ``Bearer <access token>`` obtained from
        ``/api/token/refresh/`` and kept until Label Studio refuses it."""
        ls = self.label_studio
        if ls is None or not ls.token:
            return {}
        if not _is_jwt(ls.token):
            return {"Authorization": f"Token {ls.token}"}
        with self._token_lock:
            if refresh or self._access_token is None:
                body = json.dumps({"refresh": ls.token}).encode()
                status, _, answer = self._request(
                    "POST", f"{ls.base_path}/api/token/refresh/", body,
                    {"Content-Type": "application/json"}, 1 << 16,
                )
                try:
                    access = json.loads(answer)["access"] if status == 200 else None
                except (ValueError, KeyError, TypeError):
                    access = None
                if not isinstance(access, str):
                    raise ImageFetchError(
                        f"Label Studio refused the personal access token in "
                        f"{LABEL_STUDIO_KEY_ENV} (token refresh answered {status})"
                    )
                self._access_token = access
            return {"Authorization": f"Bearer {self._access_token}"}

    def _get(self, target: str, headers: dict[str, str]) -> tuple[int, str | None, bytes]:
        headers = {"User-Agent": "huale-serve", "Accept": "*/*", **headers}
        return self._request("GET", target, None, headers, self.max_bytes)

    def _request(self, method: str, target: str, body: bytes | None, headers: dict[str, str],
                 limit: int) -> tuple[int, str | None, bytes]:
        """(status, Location header, body of at most ``limit`` bytes) of one request to the
        Label Studio host; redirects are returned, never followed."""
        ls = self.label_studio
        assert ls is not None
        if ls.scheme == "https":
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                ls.host, ls.port, timeout=self.timeout, context=ssl.create_default_context()
            )
        else:
            connection = http.client.HTTPConnection(ls.host, ls.port, timeout=self.timeout)
        try:
            connection.request(method, target, body=body, headers=headers)
            response = connection.getresponse()
            length = response.getheader("Content-Length")
            if response.status == 200 and length and length.isdigit() and int(length) > limit:
                raise ImageFetchError(
                    f"{target!r} is {int(length)} bytes, over the limit of {limit}"
                )
            data = response.read(limit + 1)
            if len(data) > limit:
                raise ImageFetchError(f"{target!r} is over the limit of {limit} bytes")
            return response.status, response.getheader("Location"), data
        except (OSError, http.client.HTTPException) as exc:
            raise ImageFetchError(
                f"cannot reach Label Studio at {ls.origin} for {target!r}: {exc}"
            ) from None
        finally:
            connection.close()


def pool_paths(records: Iterable) -> dict[str, Path]:
    """``image_id -> path`` of dataset records (anything with ``image_id`` and ``path``)."""
    return {r.image_id: Path(r.path) for r in records}


def _is_jwt(token: str) -> bool:
    """A personal access token is a JWT (three base64url parts); a legacy token is hex."""
    parts = token.split(".")
    return len(parts) == 3 and all(parts) and token.startswith("eyJ")


def _normal(path: str) -> str | None:
    """Lexically normalised absolute posix path, or None when it climbs with ``..`` or is not
    absolute (only a listed pool path can match it afterwards)."""
    if not path.startswith("/") or "\x00" in path:
        return None
    if any(part == ".." for part in path.split("/")):
        return None
    return posixpath.normpath(path)


def _short(text: str | None, limit: int = 120) -> str:
    text = repr(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."

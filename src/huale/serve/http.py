"""The HTTP face of ``huale serve``: Label Studio's ML backend contract as a WSGI application.

This module owns everything HTTP and nothing else; the backend it wraps (:class:`Backend`)
never sees a request. Routes (JSON in, JSON out):

- ``GET /health`` (and ``GET /``): ``{"status": "UP", ...}`` plus the backend's state (model
  version, background training round).
- ``POST /setup``: ``{"model_version": ...}`` (Label Studio sends ``project``, ``schema``, ...).
- ``POST /predict``: ``{"tasks": [...]}`` -> ``{"results": [prediction per task], "model_version"}``;
  a task the backend could not answer gets ``[]`` (Label Studio then stores no prediction for it)
  and an entry in ``"errors"`` (``task``, ``index``, ``status``, ``error``) while the other tasks
  are answered; a request none of whose tasks can be answered fails as a whole (below).
- ``POST /webhook``: ``{"action": EVENT, ...}`` -> ``{"status": "ok", "result": ...}``;
  ``POST /train`` (what older Label Studio versions call for "Start training") is the
  ``START_TRAINING`` event.

Failures are answers, never a dead server: bad JSON, a body that is not an object, an unknown
task or a refused image reference give 400 ``{"error": message}``; a body over the size limit
413; a missing or wrong token 401 (when ``auth_token`` is set every route needs it, as
``Authorization: Bearer <token>`` or HTTP Basic with the token as password, which is what Label
Studio's "basic auth" connection setting sends); a model not ready yet 503; Label Studio failing
to deliver an image 502; the project locked by another process 409 (:func:`default_error_status`);
any other exception in a request is logged with its traceback and answered 500, and the next
request is served as usual.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from huale.errors import HualeError

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 32 * 2**20
JSON_TYPE = "application/json"
_STATUS_TEXT = {
    200: "200 OK",
    201: "201 Created",
    400: "400 Bad Request",
    401: "401 Unauthorized",
    404: "404 Not Found",
    405: "405 Method Not Allowed",
    409: "409 Conflict",
    411: "411 Length Required",
    413: "413 Payload Too Large",
    500: "500 Internal Server Error",
    502: "502 Bad Gateway",
    503: "503 Service Unavailable",
}


class HTTPError(HualeError):
    """An error of the request itself (size, JSON, route), answered with ``status``."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def default_error_status() -> dict[type[BaseException], int]:
    """Exception type -> status for the errors of huale's backends (first match wins)."""
    from huale.locking import FolderLockedError
    from huale.serve.errors import NotReady, TaskError, UpstreamError
    from huale.serve.images import ImageFetchError, ImageRefused

    return {
        TaskError: 400,
        ImageRefused: 400,
        NotReady: 503,
        UpstreamError: 502,
        ImageFetchError: 502,
        FolderLockedError: 409,
        HualeError: 400,  # bad data or settings named in the message (e.g. an unknown class)
    }


class Backend(Protocol):
    """What the HTTP layer calls; it knows nothing of HTTP (see :mod:`huale.serve.backend`)."""

    def health(self) -> dict[str, Any]: ...

    def setup(self, request: dict[str, Any]) -> dict[str, Any]: ...

    def predict(self, tasks: list[Any], label_config: Any = None) -> list[Any]:
        """One prediction dict per task, or a :class:`huale.serve.errors.TaskFailure`."""

    @property
    def model_version(self) -> str | None: ...

    def handle_event(self, event: str, payload: dict[str, Any]) -> dict[str, Any]: ...


StartResponse = Callable[..., Any]


class MLBackendApp:
    """WSGI application of the routes above around ``backend``.

    auth_token: when set, every route requires it; max_body_bytes: larger bodies get 413;
    error_status: more exception types -> status, checked before :func:`default_error_status`.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        auth_token: str | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        error_status: dict[type[BaseException], int] | None = None,
    ):
        self.backend = backend
        self.auth_token = auth_token or None
        self.max_body_bytes = int(max_body_bytes)
        self.error_status = default_error_status()
        if error_status:
            self.error_status = {**error_status, **self.error_status}
        self.routes: dict[str, dict[str, Callable[[dict], tuple[int, Any]]]] = {
            "/": {"GET": self._health},
            "/health": {"GET": self._health},
            "/setup": {"POST": self._setup},
            "/predict": {"POST": self._predict},
            "/webhook": {"POST": self._webhook},
            "/train": {"POST": self._train},
            "/metrics": {"GET": lambda environ: (200, {})},
        }

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        try:
            status, body, headers = self._dispatch(environ)
        except BaseException as exc:  # noqa: BLE001 - one request must never take the server down
            if isinstance(exc, KeyboardInterrupt):
                raise
            status, body, headers = self._failure(exc, environ)
        payload = json.dumps(body, allow_nan=False).encode("utf-8")
        start_response(
            _STATUS_TEXT.get(status, f"{status} Error"),
            [("Content-Type", JSON_TYPE), ("Content-Length", str(len(payload))), *headers],
        )
        return [payload]

    # -- dispatch -------------------------------------------------------------------------

    def _dispatch(self, environ: dict) -> tuple[int, Any, list[tuple[str, str]]]:
        path = environ.get("PATH_INFO") or "/"
        if len(path) > 1:
            path = path.rstrip("/")
        method = environ.get("REQUEST_METHOD", "GET").upper()
        if self.auth_token is not None and not self._authorized(environ):
            return (
                401,
                {"error": "missing or wrong token: send Authorization: Bearer <token>"},
                [("WWW-Authenticate", 'Bearer realm="huale serve"')],
            )
        handlers = self.routes.get(path)
        if handlers is None:
            return 404, {"error": f"no route {path}; routes: {', '.join(sorted(self.routes))}"}, []
        if method == "HEAD" and "GET" in handlers:
            method = "GET"
        handler = handlers.get(method)
        if handler is None:
            allowed = ", ".join(sorted(handlers))
            return 405, {"error": f"{method} {path} is not allowed; use {allowed}"}, [("Allow", allowed)]
        status, body = handler(environ)
        return status, body, []

    def _failure(self, exc: BaseException, environ: dict) -> tuple[int, Any, list]:
        where = f"{environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO')}"
        status = self._status_of(exc)
        if status is None:
            status = 500
            log.error("%s failed", where, exc_info=(type(exc), exc, exc.__traceback__))
            message = f"internal error ({type(exc).__name__}: {exc}); the server keeps running"
        else:
            log.warning("%s: %d %s", where, status, exc)
            message = str(exc)
        return status, {"error": message}, []

    def _status_of(self, exc: BaseException) -> int | None:
        """The status of a known error; None for anything else (a bug: 500)."""
        if isinstance(exc, HTTPError):
            return exc.status
        for kind, status in self.error_status.items():
            if isinstance(exc, kind):
                return status
        return None

    def _authorized(self, environ: dict) -> bool:
        header = environ.get("HTTP_AUTHORIZATION", "")
        scheme, _, value = header.partition(" ")
        scheme, value = scheme.lower(), value.strip()
        expected = self.auth_token.encode("utf-8")
        if scheme in ("bearer", "token"):
            return hmac.compare_digest(value.encode("utf-8"), expected)
        if scheme == "basic":
            try:
                decoded = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                return False
            _, sep, password = decoded.partition(b":")
            return bool(sep) and hmac.compare_digest(password, expected)
        return False

    def _json_body(self, environ: dict) -> dict:
        """The request body as a JSON object (400 / 411 / 413 otherwise)."""
        raw_length = environ.get("CONTENT_LENGTH") or ""
        if not raw_length.strip():
            raise HTTPError("a JSON body with Content-Length is required", 411)
        try:
            length = int(raw_length)
        except ValueError:
            raise HTTPError(f"invalid Content-Length {raw_length!r}") from None
        if length < 0:
            raise HTTPError(f"invalid Content-Length {raw_length!r}")
        if length > self.max_body_bytes:
            raise HTTPError(
                f"request body of {length} bytes is over the limit of {self.max_body_bytes} "
                "(--max-request-mb)",
                413,
            )
        body = environ["wsgi.input"].read(length) if length else b""
        try:
            data = json.loads(body.decode("utf-8"))
        except UnicodeDecodeError:
            raise HTTPError("malformed JSON: the body is not UTF-8") from None
        except json.JSONDecodeError as exc:
            raise HTTPError(f"malformed JSON: {exc}") from None
        if not isinstance(data, dict):
            raise HTTPError(f"the JSON body must be an object, got {type(data).__name__}")
        return data

    # -- routes ---------------------------------------------------------------------------

    def _health(self, environ: dict) -> tuple[int, Any]:
        return 200, {"status": "UP", **self.backend.health()}

    def _setup(self, environ: dict) -> tuple[int, Any]:
        return 200, self.backend.setup(self._json_body(environ))

    def _predict(self, environ: dict) -> tuple[int, Any]:
        data = self._json_body(environ)
        tasks = data.get("tasks")
        if not isinstance(tasks, list):
            raise HTTPError('"tasks" must be a list of Label Studio tasks')
        from huale.serve.errors import TaskFailure

        results, errors = [], []
        for answer in self.backend.predict(tasks, data.get("label_config")):
            if isinstance(answer, TaskFailure):
                # an empty list: Label Studio stores no prediction for the task (and asks again
                # later); "errors" says why, for whoever reads the response
                results.append([])
                errors.append({"task": answer.task_id, "index": answer.index,
                               "status": self._status_of(answer.error) or 500,
                               "error": str(answer.error)})
            else:
                results.append(answer)
        body = {"results": results, "model_version": self.backend.model_version}
        if errors:
            body["errors"] = errors
        return 200, body

    def _webhook(self, environ: dict) -> tuple[int, Any]:
        data = self._json_body(environ)
        event = data.pop("action", None)
        if not isinstance(event, str) or not event:
            raise HTTPError('a webhook body needs "action" (the Label Studio event name)')
        return 200, {"status": "ok", "result": self.backend.handle_event(event, data)}

    def _train(self, environ: dict) -> tuple[int, Any]:
        data = self._json_body(environ)
        return 200, {"status": "ok", "result": self.backend.handle_event("START_TRAINING", data)}

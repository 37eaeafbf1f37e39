"""Run a WSGI application on waitress, a production WSGI server (the ``huale[serve]`` extra).

waitress is pure Python, multi-threaded and has no development-server caveats: it buffers
request bodies itself (capped by ``max_request_body_size``), and a slow client never blocks the
other threads. One process serves every request, so the model is loaded once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from huale.errors import ConfigError

log = logging.getLogger(__name__)

INSTALL_HINT = 'huale serve needs the serve extra: pip install "huale[serve]" (waitress)'


def require_waitress():
    """The waitress module, or a one-line ConfigError with the install command."""
    try:
        import waitress
    except ModuleNotFoundError:
        raise ConfigError(INSTALL_HINT) from None
    return waitress


def create_server(app: Callable, *, host: str, port: int, threads: int = 8,
                  max_body_bytes: int, ident: str = "huale"):
    """A bound waitress server (``.effective_port``, ``.run()``, ``.close()``); port 0 picks a
    free port."""
    require_waitress()
    from waitress.server import create_server as waitress_server

    try:
        return waitress_server(
            app,
            host=host,
            port=port,
            threads=threads,
            ident=ident,
            max_request_body_size=max_body_bytes,
            clear_untrusted_proxy_headers=True,
            channel_timeout=300,
        )
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None


def stop_server(server, thread=None, timeout: float = 10.0) -> None:
    """Stop a server whose ``run()`` loops in ``thread`` (another thread than the caller's).

    The loop thread itself closes every socket (so ``run()`` returns: its socket map is empty)
    and then its request threads are shut down.
    """
    from waitress import wasyncore

    try:
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
    except OSError as exc:  # the wake-up pipe is already gone: close the sockets from here
        log.debug("stop_server: trigger unavailable (%s); closing the sockets directly", exc)
        wasyncore.close_all(server._map, ignore_all=True)
    if thread is not None:
        thread.join(timeout)
    server.task_dispatcher.shutdown()

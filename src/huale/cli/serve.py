"""``huale serve PROJECT``: the project's Label Studio ML backend on a production WSGI server."""

from __future__ import annotations

import argparse
import logging
import os
import signal
from pathlib import Path

from huale.cli.common import Formatter

log = logging.getLogger(__name__)

HELP = "Serve a labeling project to Label Studio as its ML backend (pre-annotations + order)."

TOKEN_ENV = "HUALE_SERVE_TOKEN"

EXAMPLES = f"""\
examples:
  huale serve projects/cells                         # http://127.0.0.1:9090
  LABEL_STUDIO_URL=http://localhost:8080 LABEL_STUDIO_API_KEY=... \\
      huale serve projects/cells --host 0.0.0.0 --port 9090 --auth-token s3cret

Label Studio: Settings > Model > Connect Model, URL http://HOST:PORT (with --auth-token: choose
basic authentication, any user name, the token as password). Routes: GET /health, POST /setup,
POST /predict, POST /webhook (annotation events update the project's labeled set as huale ingest
does; START_TRAINING runs the next round in the background). Images are read from the project's
pool, or fetched from LABEL_STUDIO_URL with LABEL_STUDIO_API_KEY; no other host is contacted.
The token may also come from ${TOKEN_ENV}. Needs the serve extra: pip install "huale[serve]".
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "serve", help=HELP, description=HELP, epilog=EXAMPLES, formatter_class=Formatter
    )
    p.add_argument("project", type=Path, help="project folder (huale init)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (0.0.0.0: every interface; use --auth-token then)")
    p.add_argument("--port", type=int, default=9090, help="port to listen on")
    p.add_argument("--auth-token", default=None,
                   help=f"require this token on every request (default: ${TOKEN_ENV}, else none)")
    p.add_argument("--threads", type=int, default=8, help="request threads of the server")
    p.add_argument("--replicas", type=int, default=1,
                   help="model copies for concurrent inference (1: one model behind a lock)")
    p.add_argument("--max-request-mb", type=float, default=32.0, help="largest request body")
    p.add_argument("--max-tasks", type=int, default=256, help="most tasks in one /predict")
    p.add_argument("--batch-size", type=int, default=4, help="images per forward pass")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, or auto")
    p.add_argument("--no-amp", dest="amp", action="store_false",
                   help="disable mixed precision on CUDA")
    return p


def _terminate(signum, frame) -> None:
    raise SystemExit(0)


def run(args: argparse.Namespace) -> int:
    from huale.errors import ConfigError
    from huale.serve.backend import ProjectBackend, ServeOptions
    from huale.serve.http import MLBackendApp
    from huale.serve.images import LabelStudioHost
    from huale.serve.server import create_server, require_waitress

    require_waitress()
    try:
        from huale.project.state import Project
    except ModuleNotFoundError:
        raise ConfigError("huale serve needs huale's labeling projects (huale init / huale "
                          "round), which this installation lacks") from None
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be in 0..65535, got {args.port}")
    for name in ("threads", "replicas", "max_tasks", "batch_size"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1")
    if args.max_request_mb <= 0:
        raise ConfigError("--max-request-mb must be positive")
    token = args.auth_token or os.environ.get(TOKEN_ENV) or None
    label_studio = LabelStudioHost.from_env()
    project = Project.open(args.project)
    backend = ProjectBackend(
        project,
        label_studio=label_studio,
        options=ServeOptions(device=args.device, replicas=args.replicas,
                             batch_size=args.batch_size, amp=args.amp, max_tasks=args.max_tasks),
    )
    max_body = int(args.max_request_mb * 2**20)
    app = MLBackendApp(backend, auth_token=token, max_body_bytes=max_body)
    server = create_server(app, host=args.host, port=args.port, threads=args.threads,
                           max_body_bytes=max_body)
    port = server.effective_port
    print(f"huale serve: {args.project} as {backend.model_version} on http://{args.host}:{port}"
          f" ({'token required' if token else 'no authentication'}; images from the pool"
          f"{' and ' + label_studio.origin if label_studio else ' only'}); Ctrl-C stops",
          flush=True)
    if token is None and args.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("listening on %s without --auth-token: anyone who reaches it can read "
                    "predictions and change the labeled set", args.host)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        server.run()  # returns after SIGTERM (SystemExit) with its task threads shut down
    except KeyboardInterrupt:
        server.task_dispatcher.shutdown()
    finally:
        server.close()
    if backend.training.running:
        print("huale serve: stopped; a background round was still running and is abandoned "
              "(run huale round again to resume it)")
    return 0

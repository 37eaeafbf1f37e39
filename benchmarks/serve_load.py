"""Load test of ``huale serve``: concurrent ``/predict`` calls against offline ``huale select``.

Builds a labeling project on synthetic images (``huale synth``; one round of ``huale round``,
whose model quality does not matter for timing), starts ``huale serve`` on loopback in a
subprocess, and sends ``--requests`` ``/predict`` calls (one task each, pool images in turn) from
``--clients`` concurrent clients. Reported: errors (any non-200 answer or a reply without one
prediction per task), latency p50/p95/max, throughput, and next to it the offline time of
``huale select`` with the round's model and strategy on the same pool images (one process,
``--workers 0``), per image. ``--replicas`` runs the server once per value (1 = one model
behind a lock; 2 = two copies).

    python benchmarks/serve_load.py --images 40 --requests 200 --clients 8 --replicas 1 2

Figures measured with this script are in docs/performance.md ("huale serve under load").
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ADDRESS = re.compile(r"on http://([0-9.]+):(\d+) ")


def child_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = str(threads)
    return env


def huale(*args: str, threads: int) -> None:
    subprocess.run([sys.executable, "-m", "huale", "-q", *args], check=True,
                   env=child_env(threads), stdout=subprocess.DEVNULL)


def build_project(root: Path, images: int, image_size: int, threads: int) -> Path:
    """Synthetic images: ``pool/`` (unlabeled: ``images`` of the train split), the labeled set
    (the test split), and a project with one finished round (2 epochs, budget 10%)."""
    from huale.data.coco import read_coco

    synth = root / "synth"
    huale("synth", "--out", str(synth), "--images", str(images + 20), "--seed", "0",
          "--image-size", str(image_size), "--test-fraction", "0.25", threads=threads)
    train = read_coco(synth / "train.json")
    pool = root / "pool"
    pool.mkdir()
    for record in train.records[:images]:
        shutil.copy(record.path, pool / Path(record.path).name)
    project = root / "project"
    huale("init", str(project), "--pool", str(pool), "--labeled", str(synth / "test.json"),
          threads=threads)
    huale("round", str(project), "--budget", str(max(1, images // 10)), "--epochs", "2",
          "--device", "cpu", threads=threads)
    return project


def offline_select(project: Path, out: Path, threads: int) -> tuple[float, int]:
    """Seconds of ``huale select`` with the round's model and strategy on the project's pool."""
    round_dir = sorted((project / "rounds").iterdir())[-1]
    selection = json.loads((round_dir / "selection.json").read_text())
    args = ["select", "--checkpoint", str(round_dir / "train" / "model.pt"),
            "--pool", selection["pool"], "--labeled", str(project / "labeled.json"),
            "--budget", "1", "--strategy", selection["strategy"], "--out", str(out),
            "--device", "cpu", "--workers", "0"]
    for key, value in selection.get("strategy_options", {}).items():
        args += ["--strategy-option", f"{key}={value}"]
    started = time.perf_counter()
    huale(*args, threads=threads)
    return time.perf_counter() - started, int(selection["pool_images"])


class Server:
    def __init__(self, project: Path, replicas: int, threads: int):
        command = [sys.executable, "-m", "huale", "serve", str(project), "--port", "0",
                   "--device", "cpu", "--replicas", str(replicas), "--threads", "8"]
        self.proc = subprocess.Popen(command, env=child_env(threads), stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        for line in self.proc.stdout:
            match = ADDRESS.search(line)
            if match:
                self.host, self.port = match.group(1), int(match.group(2))
                return
        raise RuntimeError(f"huale serve exited {self.proc.wait()} without an address")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)


def predict(host: str, port: int, task: dict) -> tuple[float, str | None]:
    """(seconds, error or None) of one /predict call with one task."""
    body = json.dumps({"tasks": [task]}).encode()
    started = time.perf_counter()
    try:
        connection = http.client.HTTPConnection(host, port, timeout=300)
        connection.request("POST", "/predict", body=body,
                           headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        payload = response.read()
        connection.close()
    except OSError as exc:
        return time.perf_counter() - started, f"connection: {exc}"
    elapsed = time.perf_counter() - started
    if response.status != 200:
        return elapsed, f"HTTP {response.status}: {payload[:200]!r}"
    results = json.loads(payload).get("results")
    if not isinstance(results, list) or len(results) != 1 or "result" not in results[0]:
        return elapsed, f"malformed reply {payload[:200]!r}"
    return elapsed, None


def load(server: Server, tasks: list[dict], requests: int, clients: int) -> dict:
    work = [tasks[k % len(tasks)] for k in range(requests)]
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        outcomes = list(pool.map(lambda t: predict(server.host, server.port, t), work))
    wall = time.perf_counter() - started
    latencies = sorted(t for t, _ in outcomes)
    errors = [e for _, e in outcomes if e is not None]
    return {
        "requests": requests, "clients": clients, "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "p50": statistics.median(latencies),
        "p95": latencies[min(len(latencies) - 1, int(round(0.95 * len(latencies))) - 1)],
        "max": latencies[-1], "wall": wall, "throughput": requests / wall,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=40, help="pool images")
    parser.add_argument("--image-size", type=int, default=192)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--replicas", type=int, nargs="+", default=[1])
    parser.add_argument("--threads", type=int, default=2, help="torch threads per process")
    parser.add_argument("--project", type=Path, help="use this project instead of building one")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="huale-serve-load-"))
    try:
        print(f"building the project ({args.images} synthetic images) ...", flush=True)
        project = args.project or build_project(work, args.images, args.image_size, args.threads)
        offline, pool_images = offline_select(project, work / "select", args.threads)
        pool = Path(json.loads(sorted((project / "rounds").iterdir())[-1].joinpath(
            "selection.json").read_text())["pool"])
        tasks = [{"id": k, "data": {"image": str(p.resolve())}}
                 for k, p in enumerate(sorted(pool.iterdir())) if p.is_file()]
        per_image = offline / pool_images
        print(f"\noffline huale select: {offline:.1f} s for {pool_images} images "
              f"({per_image:.3f} s/image, one process, workers 0, {args.threads} threads)")
        print(f"\n{'replicas':>8} {'requests':>8} {'clients':>7} {'errors':>6} {'p50 s':>7} "
              f"{'p95 s':>7} {'max s':>7} {'req/s':>6} {'p50 / select per image':>22}")
        for replicas in args.replicas:
            server = Server(project, replicas, args.threads)
            try:
                predict(server.host, server.port, tasks[0])  # warm-up, not counted
                r = load(server, tasks, args.requests, args.clients)
            finally:
                server.stop()
            print(f"{replicas:>8} {r['requests']:>8} {r['clients']:>7} {r['errors']:>6} "
                  f"{r['p50']:>7.3f} {r['p95']:>7.3f} {r['max']:>7.3f} {r['throughput']:>6.2f} "
                  f"{r['p50'] / per_image:>22.1f}")
            if r["first_error"]:
                print(f"  first error: {r['first_error']}")
        print(f"\nmachine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

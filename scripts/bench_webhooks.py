"""How long after a job ends its webhook arrives, on the local stack.

Starts `thumbnails dev`'s stack in a temporary directory (Valkey, broker, upload, status,
resize under gunicorn) with WEBHOOK_ALLOWED_HOSTS=127.0.0.1 and a throwaway secret, and a
receiver on loopback that checks each webhook's signature with the `standardwebhooks`
verifier and notes when it arrived. Submits JOBS small PNGs (CONCURRENCY at a time), each
with the receiver as callback_url, and prints the time from each job's finished_at (the
Redis record) to its webhook's arrival: median, 95th and 99th percentile, max, in ms.
The path measured: resize's reply -> broker (Redis stream) -> Trigger -> status POST
/webhooks -> Redis read -> signed POST to the receiver.

Usage: python scripts/bench_webhooks.py [--jobs 200] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
from PIL import Image
from standardwebhooks.webhooks import Webhook
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from thumbnails.core.config import Config
from thumbnails.local import devstack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    verifier = Webhook(secret)
    arrived: dict[str, float] = {}
    lock = threading.Lock()

    def receiver(environ: dict[str, Any], start_response: Any) -> Any:
        now = time.time()
        request = Request(environ)
        job = verifier.verify(request.get_data(), dict(request.headers))["data"]
        with lock:
            arrived.setdefault(job["job_id"], now)
        return Response(b"", 204)(environ, start_response)

    server = make_server("127.0.0.1", 0, receiver, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    callback = f"http://127.0.0.1:{server.server_port}/hook"
    buffer = io.BytesIO()
    Image.linear_gradient("L").resize((320, 240)).convert("RGB").save(buffer, "PNG")
    png = buffer.getvalue()
    with tempfile.TemporaryDirectory() as tmp:
        config = Config(webhook_secret=secret, webhook_allowed_hosts="127.0.0.1")
        port = 20_000 + os.getpid() % 20_000
        stack = devstack.start(config, port, Path(tmp), workers=2)
        try:
            urls = stack.urls

            def submit(_: int) -> str:
                answer = requests.post(f"{urls['upload']}/jobs", files={"file": png},
                                       data={"callback_url": callback}, timeout=30)
                answer.raise_for_status()
                job_id: str = answer.json()["job_id"]
                return job_id

            with ThreadPoolExecutor(args.concurrency) as pool:
                ids = list(pool.map(submit, range(args.jobs)))
            deadline = time.monotonic() + 120
            while len(arrived) < len(ids) and time.monotonic() < deadline:
                time.sleep(0.1)
            finished = {job_id: requests.get(f"{urls['status']}/jobs/{job_id}",
                                             timeout=10).json().get("finished_at")
                        for job_id in ids}
        finally:
            stack.stop()
            server.shutdown()
    delays = sorted((arrived[j] - f) * 1000 for j, f in finished.items()
                    if j in arrived and f is not None)
    if not delays:
        raise SystemExit("no webhook arrived")
    cuts = statistics.quantiles(delays, n=100)
    print(f"jobs {len(ids)}, webhooks received {len(delays)}, concurrency {args.concurrency}")
    print(f"finished_at -> webhook received, ms: median {statistics.median(delays):.1f}, "
          f"p95 {cuts[94]:.1f}, p99 {cuts[98]:.1f}, max {delays[-1]:.1f}")


if __name__ == "__main__":
    main()

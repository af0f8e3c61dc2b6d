#!/usr/bin/env python3
"""CPU time of upload's multipart parser (thumbnails.upload.multipart) against werkzeug's
(`werkzeug.formparser.parse_form_data`, what Flask's request.files uses) on the same body:
a ~560 KB file field and one text field, as a client library frames them.

Usage: scripts/bench_multipart.py [--kib 560] [--runs 300]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from collections.abc import Callable

from urllib3 import encode_multipart_formdata
from werkzeug.formparser import parse_form_data

from thumbnails.upload import multipart


def cpu_ms(parse: Callable[[], None], runs: int) -> float:
    """CPU ms per call (time.process_time), after one unmeasured call."""
    parse()
    started = time.process_time()
    for _ in range(runs):
        parse()
    return (time.process_time() - started) * 1000 / runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kib", type=int, default=560, help="size of the file field")
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    data = os.urandom(args.kib * 1024)
    body, content_type = encode_multipart_formdata({"file": ("a.jpg", data), "width": "100"})

    def ours() -> None:
        fields, files = multipart.parse(body, content_type)
        assert files["file"] == data and fields["width"] == "100"

    def werkzeug() -> None:
        environ = {"REQUEST_METHOD": "POST", "CONTENT_TYPE": content_type,
                   "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body)}
        _, form, files = parse_form_data(environ, max_form_memory_size=None)
        assert files["file"].read() == data and form["width"] == "100"

    print(f"body {len(body)} bytes, {args.runs} runs, CPU ms per parse:")
    for name, parse in (("thumbnails.upload.multipart", ours), ("werkzeug", werkzeug)):
        print(f"  {name}: {cpu_ms(parse, args.runs):.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

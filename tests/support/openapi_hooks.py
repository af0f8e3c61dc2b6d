"""Schemathesis hooks for tests/integration/test_openapi.py (loaded by `st run` through
SCHEMATHESIS_HOOKS).

- The `file` part of POST /jobs: real small images of every accepted type (so that 202s,
  and jobs that later succeed, are exercised), one whose data is cut short (accepted, the
  job then fails), and bytes no image type has (415); besides what Schemathesis makes.
- A `job_id` path parameter: now and then one of the jobs the test made beforehand
  (THUMBNAILS_TEST_JOB_IDS: a succeeded one, a failed one), and If-None-Match now and then
  the succeeded one's thumbnail's ETag (THUMBNAILS_TEST_ETAG), so that GET /jobs/{job_id},
  /thumbnail and /debug answer 200, 304 and 409 too, not only 404.
- A rendition `name` path parameter: now and then RENDITION, which some of those jobs
  asked for, so GET /jobs/{job_id}/thumbnails/{name} answers 200 and 409 too.
"""

from __future__ import annotations

import itertools
import os
import uuid
from typing import Any

import schemathesis
from hypothesis import strategies as st

from tests.support.images import encode, marked

JOB_IDS_ENV = "THUMBNAILS_TEST_JOB_IDS"
ETAG_ENV = "THUMBNAILS_TEST_ETAG"
RENDITION = "small"  # the rendition name of the known jobs that asked for renditions


def sample_files() -> list[bytes]:
    """Small files: one of each accepted type, a truncated JPEG and a non-image."""
    image = marked((24, 18))
    big_jpeg = encode(marked((200, 150)), "JPEG", quality=90)
    return [
        encode(image, "PNG"),
        encode(image, "JPEG", quality=80),
        encode(image.convert("P"), "GIF"),
        encode(image, "WEBP"),
        encode(image, "BMP"),
        encode(image, "TIFF"),
        big_jpeg[: len(big_jpeg) // 2],  # the header reads, the data is cut short: fails later
        b"%PDF-1.4\n%%EOF\n",
    ]


FILES = st.sampled_from(sample_files()) | st.binary(max_size=32)
for media_type in ("image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp",
                   "image/tiff"):
    schemathesis.openapi.media_type(media_type, FILES)


_THUMBNAIL_TURNS = itertools.count()


@schemathesis.hook
def flatmap_case(context: Any, case: Any) -> Any:
    """A case with a job_id: as generated, or one of the known jobs (as often as not); for
    the thumbnail of the succeeded one, now and then with its ETag as If-None-Match."""
    known = [i for i in os.environ.get(JOB_IDS_ENV, "").split(",") if i]
    etag = os.environ.get(ETAG_ENV, "")
    params = case.path_parameters or {}
    if "job_id" not in params or not known:
        return st.just(case)

    def pick(choice: tuple[str, bool, bool]) -> Any:
        job_id, conditional, known_name = choice
        if case.path.endswith("/thumbnail") and etag:
            # In turn, not by chance, so every run sees each answer the test requires: 304
            # (the succeeded job, conditional), 200 (the same, plain), 409 (the failed one)
            # and the generated id's 404.
            turn = next(_THUMBNAIL_TURNS) % 4
            job_id = (known[0], known[0], known[1], params["job_id"])[turn]
            conditional = turn == 0
        case.path_parameters = {**params, "job_id": job_id}
        if "name" in params and known_name:
            case.path_parameters["name"] = RENDITION
        if conditional and etag and case.path.endswith("/thumbnail"):
            case.headers = {**(case.headers or {}), "If-None-Match": etag}
        return case

    return st.tuples(st.sampled_from([params["job_id"], *known]), st.booleans(),
                     st.booleans()).map(pick)


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    """DELETE never removes a known job (any phase's, the stateful one's too, which takes
    ids from answers): that would take the other operations' 200, 304 and 409 away from
    whatever runs after it, and the run's order is not fixed. A fresh id gets its 404."""
    known = {i for i in os.environ.get(JOB_IDS_ENV, "").split(",") if i}
    params = case.path_parameters or {}
    if case.method.upper() == "DELETE" and params.get("job_id") in known:
        case.path_parameters = {**params, "job_id": str(uuid.uuid4())}

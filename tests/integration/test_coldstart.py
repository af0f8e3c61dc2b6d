"""Cold start: a function imports only what its configured backend needs (issue 13)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.images import heic, marked

# Imports the modules named in argv (and what gunicorn's workers import), opens the store,
# then says which heavy packages came with them.
PROBE = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
import thumbnails.core.serving, thumbnails.core.buffering
from thumbnails.core.config import Config
from thumbnails.core.storage import open_store
store = open_store(Config.from_env())
print(json.dumps({"store": type(store).__name__,
                  "loaded": [m for m in ("minio", "pillow_heif", "urllib3") if m in sys.modules]}))
"""


ALL = ("thumbnails.resize", "thumbnails.upload", "thumbnails.status")


def loaded_after_start(backend: str, tmp_path, modules=ALL) -> dict:
    env = {"STORAGE_BACKEND": backend, "DATA_DIR": str(tmp_path), "S3_ENDPOINT": "127.0.0.1:9",
           "S3_ACCESS_KEY": "key", "S3_SECRET_KEY": "secret-key",
           "REDIS_URL": "redis://127.0.0.1:9/0", "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-c", PROBE, *modules], env=env, capture_output=True,
                         text=True, check=True, timeout=60)
    return json.loads(run.stdout)


def test_filesystem_store_imports_neither_minio_nor_pillow_heif(tmp_path):
    facts = loaded_after_start("filesystem", tmp_path)
    # upload's outbox and status's callbacks POST with urllib3; minio comes with neither.
    assert facts == {"store": "FilesystemStore", "loaded": ["urllib3"]}


def test_resize_on_the_filesystem_imports_no_http_client(tmp_path):
    facts = loaded_after_start("filesystem", tmp_path, ("thumbnails.resize",))
    assert facts == {"store": "FilesystemStore", "loaded": []}


def test_s3_store_imports_minio(tmp_path):
    facts = loaded_after_start("s3", tmp_path)
    assert facts == {"store": "S3Store", "loaded": ["minio", "urllib3"]}


HEIF_PROBE = """
import json, sys
from thumbnails.core import imaging
before = "pillow_heif" in sys.modules
data = open(sys.argv[1], "rb").read()
thumb = imaging.make_thumbnail(data, imaging.ThumbnailOptions(), imaging.Limits())
print(json.dumps({"before": before, "after": "pillow_heif" in sys.modules,
                  "size": [thumb.width, thumb.height], "source": thumb.source.format}))
"""


def test_heif_decoder_is_loaded_when_a_heif_arrives(tmp_path):
    sample = tmp_path / "sample.heic"
    sample.write_bytes(heic(marked((400, 300))))  # written by pillow-heif here, not there
    run = subprocess.run([sys.executable, "-c", HEIF_PROBE, str(sample)], capture_output=True,
                         text=True, check=True, timeout=60)
    # 400x300 inside 100x100: 100x75 (aspect ratio kept).
    assert json.loads(run.stdout) == {"before": False, "after": True, "size": [100, 75],
                                      "source": "HEIF"}

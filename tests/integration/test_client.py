"""The client commands (`thumbnails submit|status|list|get|watch|delete`) against the real
stack."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pty
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from PIL import Image

from tests.support.images import encode, heic, marked
from tests.support.stackutil import all_jobs, running_stack, submit, wait_terminal
from thumbnails.client import Client
from thumbnails.client.cli import Progress
from thumbnails.core.config import Config

THUMBNAILS = Path(sys.executable).with_name("thumbnails")
API_KEY = "correct horse battery staple"


@pytest.fixture(scope="module")
def keyed_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    config = Config(api_key_hashes=hashlib.sha256(API_KEY.encode()).hexdigest())
    with running_stack(config, tmp_path_factory.mktemp("keyed")) as stack_urls:
        yield stack_urls


def run(urls: dict[str, str], *args: str | Path, timeout: float = 30,
        **env: str) -> subprocess.CompletedProcess[str]:
    """The console script as a user runs it, pointed at a stack by the environment."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("THUMBNAILS_")}
    environ |= {"THUMBNAILS_UPLOAD_URL": urls["upload"], "THUMBNAILS_STATUS_URL": urls["status"],
                **env}
    return subprocess.run([str(THUMBNAILS), *map(str, args)], env=environ, capture_output=True,
                          text=True, timeout=timeout)


def images(directory: Path, **sizes: tuple[int, int]) -> list[Path]:
    """Files named as given (stem_format), each a marked image of that size."""
    paths = []
    for name, size in sizes.items():
        stem, fmt = name.rsplit("_", 1)
        path = directory / f"{stem}.{fmt}"
        path.write_bytes(encode(marked(size), {"jpg": "JPEG"}.get(fmt, fmt.upper())))
        paths.append(path)
    return paths


def job_ids(stdout: str, files: list[Path] | None = None) -> list[str]:
    """The job ids of `FILE -> JOB_ID STATUS ...` lines; in the order of `files` if given
    (with --wait, lines come as jobs end)."""
    ids = dict(line.split(" -> ", 1) for line in stdout.splitlines())
    return [ids[str(f)].split()[0] for f in files] if files else [
        rest.split()[0] for rest in ids.values()]


def test_submit_wait_out_saves_every_thumbnail(urls: dict[str, str], tmp_path: Path) -> None:
    files = images(tmp_path, cat_jpg=(400, 300), dog_png=(300, 600), bird_webp=(640, 480))
    done = run(urls, "submit", *files, "--wait", "--out", tmp_path / "thumbs")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert sorted(line.split(" -> ")[0] for line in lines) == sorted(map(str, files))
    assert all(" succeeded " in line and ", saved to " in line for line in lines), lines
    for stem, size in (("cat", (100, 75)), ("dog", (50, 100)), ("bird", (100, 75))):
        saved = tmp_path / "thumbs" / f"{stem}.png"
        assert saved.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        assert Image.open(saved).size == size
    # stderr is not a terminal here: a plain line per event instead of a bar
    assert "[submitting 3/3]" in done.stderr and "[waiting 3/3]" in done.stderr
    assert "\r" not in done.stderr


def test_submit_options_and_no_wait(urls: dict[str, str], tmp_path: Path) -> None:
    [photo] = images(tmp_path, photo_png=(400, 300))
    queued = run(urls, "submit", photo)
    assert queued.returncode == 0, queued.stderr
    assert queued.stdout.startswith(f"{photo} -> ") and queued.stdout.split()[-1] == "queued"
    assert queued.stderr == ""  # one file: no progress
    done = run(urls, "submit", photo, "--out", tmp_path / "out", "--width", "40",
               "--height", "30", "--format", "jpg", "--fit", "cover")  # --out implies --wait
    # jpg: the API's alias for jpeg, which the CLI accepts too
    assert done.returncode == 0, done.stderr
    image = Image.open(tmp_path / "out" / "photo.jpg")
    assert (image.format, image.size) == ("JPEG", (40, 30))


def test_submit_renditions_saves_each(urls: dict[str, str], tmp_path: Path) -> None:
    [photo] = images(tmp_path, photo_png=(400, 300))
    done = run(urls, "submit", photo, "--out", tmp_path / "out",
               "--rendition", "avatar:64x64:png:cover", "--rendition", "small:200x200:webp",
               "--rendition", "big:300x300:JPEG")
    assert done.returncode == 0, done.stderr
    # 400x300 covering 64x64 is 64x64; inside 200x200, 200x150; inside 300x300, 300x225.
    assert " succeeded avatar 64x64, small 200x150, big 300x225, saved to " in done.stdout
    for name, fmt, size in (("avatar.png", "PNG", (64, 64)), ("small.webp", "WEBP", (200, 150)),
                            ("big.jpg", "JPEG", (300, 225))):
        with Image.open(tmp_path / "out" / "photo" / name) as image:
            assert (image.format, image.size) == (fmt, size), name
    before = len(Client(urls["upload"], urls["status"]).page(1000)[0])
    for bad in (["--rendition", "avatar"], ["--rendition", "a:10:png"],
                ["--rendition", "a:1x1:png", "--width", "5"]):
        usage = run(urls, "submit", photo, *bad)
        assert usage.returncode == 2, (bad, usage.stderr)
    assert "--rendition replaces --width" in usage.stderr
    assert len(Client(urls["upload"], urls["status"]).page(1000)[0]) == before  # none sent
    [job_id] = job_ids(done.stdout)
    got = run(urls, "get", job_id, "--rendition", "small", "-o", tmp_path / "small.webp")
    assert got.returncode == 0, got.stderr
    assert (tmp_path / "small.webp").read_bytes() == (tmp_path / "out/photo/small.webp") \
        .read_bytes()
    unknown = run(urls, "get", job_id, "--rendition", "huge", "-o", tmp_path / "huge.png")
    assert unknown.returncode == 3 and "404 not_found" in unknown.stderr
    refused = run(urls, "submit", photo, "--rendition", "a:10x10:gif")
    assert refused.returncode == 3 and "400 bad_request: renditions[0] (a): format" \
        in refused.stderr


def test_submit_heic_to_avif_with_quality_and_gravity(urls: dict[str, str],
                                                      tmp_path: Path) -> None:
    photo = tmp_path / "IMG_0001.HEIC"
    photo.write_bytes(heic(marked((600, 200))))  # red top-left quadrant, blue elsewhere
    done = run(urls, "submit", photo, "--out", tmp_path / "out", "--width", "50",
               "--height", "50", "--format", "avif", "--fit", "cover", "--gravity", "west",
               "--quality", "70")
    assert done.returncode == 0, done.stderr
    image = Image.open(tmp_path / "out" / "IMG_0001.avif")
    assert (image.format, image.size) == ("AVIF", (50, 50))
    red = image.convert("RGB").getpixel((10, 10))
    assert red[0] > 200 and red[2] < 60  # west: the left end, where the red quadrant is
    refused = run(urls, "submit", photo, "--quality", "101")
    assert refused.returncode != 0 and "quality" in refused.stderr


def test_refused_file_exits_3_with_the_servers_message(urls: dict[str, str],
                                                       tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image at all\n")
    [good] = images(tmp_path, good_png=(50, 50))
    expected = submit(urls, notes.read_bytes(), "notes.txt").json()
    done = run(urls, "submit", notes, good, "--wait")
    assert done.returncode == 3
    assert f"notes.txt: 415 {expected['error']}: {expected['message']}" in done.stderr
    assert done.stdout.startswith(f"{good} -> ") and " succeeded " in done.stdout  # the rest ran


def test_failed_job_exits_1_with_its_error(urls: dict[str, str], tmp_path: Path) -> None:
    data = encode(marked(), "PNG")
    cut = tmp_path / "cut.png"
    cut.write_bytes(data[: len(data) // 2])  # a good header, half the pixels
    done = run(urls, "submit", cut, "--wait", "--out", tmp_path / "out")
    assert done.returncode == 1, done.stderr
    assert " failed: invalid_image: " in done.stdout
    assert not (tmp_path / "out").exists()


def test_wait_timeout_exits_5_and_keeps_the_job_id(urls: dict[str, str], tmp_path: Path) -> None:
    huge = tmp_path / "huge.png"
    marked((7000, 7000)).save(huge)  # 49 Mpx: far more than a millisecond of work
    done = run(urls, "submit", huge, "--wait", "--timeout", "0.001")
    assert done.returncode == 5, done.stderr
    assert "not finished within 0.001s" in done.stderr
    [job_id] = job_ids(done.stdout)
    assert done.stdout.split()[-1] in ("queued", "processing")
    watched = run(urls, "watch", job_id)  # follows it to the end
    assert watched.returncode == 0, watched.stderr
    statuses = [row.split()[1] for row in watched.stdout.splitlines()]
    assert statuses[-1] == "succeeded" and statuses[0] in ("queued", "processing")
    assert wait_terminal(urls, job_id)["status"] == "succeeded"


def test_status_list_get(urls: dict[str, str], tmp_path: Path) -> None:
    files = images(tmp_path, a_png=(200, 100), b_png=(100, 200))
    submitted = run(urls, "submit", *files, "--wait")
    assert submitted.returncode == 0, submitted.stderr
    first, second = job_ids(submitted.stdout, files)

    status = run(urls, "status", first)
    assert status.returncode == 0 and status.stdout.startswith("{\n  ")  # pretty
    doc = json.loads(status.stdout)
    assert (doc["job_id"], doc["status"], doc["thumbnail"]["width"]) == (first, "succeeded", 100)

    listed = run(urls, "list", "--limit", "2")
    assert listed.returncode == 0
    assert sorted(listed.stdout.split()) == sorted([first, "succeeded", second, "succeeded"])
    every = run(urls, "list", "--all")
    assert [line.split()[0] for line in every.stdout.splitlines()] == list(all_jobs(urls))

    target = tmp_path / "thumb.png"
    got = run(urls, "get", first, "-o", target)
    assert got.returncode == 0, got.stderr
    expected = requests.get(f"{urls['status']}/jobs/{first}/thumbnail", timeout=10).content
    assert target.read_bytes() == expected
    raw = subprocess.run([str(THUMBNAILS), "get", second, "-o", "-",
                          "--status-url", urls["status"]], capture_output=True, timeout=30)
    assert raw.returncode == 0 and Image.open(io.BytesIO(raw.stdout)).size == (50, 100)

    unknown = run(urls, "status", "no-such-job")
    assert unknown.returncode == 3 and "404 not_found" in unknown.stderr


def test_delete(urls: dict[str, str], tmp_path: Path) -> None:
    files = images(tmp_path, d_png=(60, 40), e_png=(40, 60))
    submitted = run(urls, "submit", *files, "--wait")
    assert submitted.returncode == 0, submitted.stderr
    first, second = job_ids(submitted.stdout, files)
    deleted = run(urls, "delete", first, second)
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout.splitlines() == [f"{first} deleted", f"{second} deleted"]
    for job_id in (first, second):
        assert requests.get(f"{urls['status']}/jobs/{job_id}", timeout=10).status_code == 404
    again = run(urls, "delete", first)
    assert again.returncode == 3 and "404 not_found" in again.stderr


def test_client_pages_through_the_cursor(urls: dict[str, str]) -> None:
    client = Client(urls["upload"], urls["status"])
    everything = [item["job_id"] for item in client.jobs(page_size=1000)]
    assert len(everything) >= 5
    assert [item["job_id"] for item in client.jobs(page_size=2)] == everything
    assert [item["job_id"] for item in client.jobs(limit=3, page_size=2)] == everything[:3]


def test_idempotency_key_gives_the_same_jobs(urls: dict[str, str], tmp_path: Path) -> None:
    files = images(tmp_path, x_png=(60, 60), y_png=(70, 70))
    key = f"batch-{tmp_path.name}"
    once = run(urls, "submit", *files, "--idempotency-key", key)
    again = run(urls, "submit", *files, "--idempotency-key", key)
    assert once.returncode == again.returncode == 0, once.stderr + again.stderr
    assert job_ids(once.stdout) == job_ids(again.stdout)
    assert len(set(job_ids(once.stdout))) == 2  # file n gets key-n: two jobs, not one


def test_watch_finished_jobs(urls: dict[str, str], tmp_path: Path) -> None:
    files = images(tmp_path, w1_png=(80, 60), w2_png=(60, 80))
    ids = job_ids(run(urls, "submit", *files, "--wait").stdout, files)
    watched = run(urls, "watch", *ids, ids[0])
    assert watched.returncode == 0, watched.stderr
    rows = watched.stdout.splitlines()
    assert [row.split()[:2] for row in rows] == [[ids[0], "succeeded"], [ids[1], "succeeded"]]
    assert "image/png" in rows[0]

    newest = run(urls, "watch", "--limit", "3")
    final = dict(row.split()[:2] for row in newest.stdout.splitlines())  # a line per change
    assert list(final)[:2] == ids[::-1] and len(final) == 3
    assert set(final.values()) <= {"succeeded", "failed"}
    assert newest.returncode == (1 if "failed" in final.values() else 0)


def test_usage_errors_exit_2(urls: dict[str, str], tmp_path: Path) -> None:
    before = len(Client(urls["upload"], urls["status"]).page(1000)[0])
    [real] = images(tmp_path, real_png=(10, 10))
    missing = run(urls, "submit", real, tmp_path / "missing.png")
    assert missing.returncode == 2 and "missing.png: no such file" in missing.stderr
    (tmp_path / "sub").mkdir()
    [twin] = images(tmp_path / "sub", real_jpg=(10, 10))
    clash = run(urls, "submit", real, twin, "--out", tmp_path / "out")
    assert clash.returncode == 2 and "real: more than one FILE" in clash.stderr
    assert run(urls, "list", THUMBNAILS_STATUS_URL="localhost:8081").returncode == 2
    assert run(urls, "list", "--limit", "0").returncode == 2
    assert len(Client(urls["upload"], urls["status"]).page(1000)[0]) == before  # none sent


def test_unreachable_service_exits_4(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        nowhere = {"upload": f"http://127.0.0.1:{port}", "status": f"http://127.0.0.1:{port}"}
        [image] = images(tmp_path, lost_png=(10, 10))
        for args in (("submit", image, "--wait"), ("status", "x"), ("list",), ("watch",)):
            done = run(nowhere, *args)
            assert done.returncode == 4, (args, done.stderr)
            assert "cannot reach the service (Connection refused)" in done.stderr


def test_api_key(keyed_urls: dict[str, str], tmp_path: Path) -> None:
    [image] = images(tmp_path, locked_png=(40, 20))
    with_flag = run(keyed_urls, "submit", image, "--wait", "--api-key", API_KEY)
    assert with_flag.returncode == 0, with_flag.stderr
    [job_id] = job_ids(with_flag.stdout)
    with_env = run(keyed_urls, "status", job_id, THUMBNAILS_API_KEY=API_KEY)
    assert with_env.returncode == 0 and json.loads(with_env.stdout)["status"] == "succeeded"
    for args in (("submit", image, image), ("list",), ("status", job_id)):
        refused = run(keyed_urls, *args)
        assert refused.returncode == 3, (args, refused.stderr)
        assert refused.stderr.count("401 unauthorized") == 1  # submit stops at the first
    wrong = run(keyed_urls, "list", "--api-key", "not the key")
    assert wrong.returncode == 3 and "unauthorized" in wrong.stderr


def run_on_terminal(urls: dict[str, str], *args: str | Path) -> tuple[int, str, str]:
    """As run, but stdout and stderr each a pseudo-terminal; (exit, stdout, stderr) as seen."""
    masters, slaves = zip(*(pty.openpty() for _ in range(2)), strict=True)
    seen: list[bytearray] = [bytearray(), bytearray()]

    def drain(n: int) -> None:
        while True:
            try:
                chunk = os.read(masters[n], 4096)
            except OSError:  # EIO: the other side closed
                return
            if not chunk:
                return
            seen[n] += chunk

    readers = [threading.Thread(target=drain, args=(n,), daemon=True) for n in range(2)]
    for reader in readers:
        reader.start()
    environ = {**os.environ, "THUMBNAILS_UPLOAD_URL": urls["upload"],
               "THUMBNAILS_STATUS_URL": urls["status"]}
    process = subprocess.Popen([str(THUMBNAILS), *map(str, args)], env=environ,
                               stdout=slaves[0], stderr=slaves[1])
    for slave in slaves:
        os.close(slave)
    code = process.wait(timeout=30)
    for reader in readers:
        reader.join(timeout=10)
    for master in masters:
        os.close(master)
    return code, seen[0].decode(), seen[1].decode()


def test_progress_bar_and_live_view_on_a_terminal(urls: dict[str, str], tmp_path: Path) -> None:
    files = images(tmp_path, t1_png=(90, 90), t2_png=(90, 90), t3_png=(90, 90))
    code, out, err = run_on_terminal(urls, "submit", *files, "--wait")
    assert code == 0, err
    drawn = visible(err)  # rich's bar: redrawn in place (\r, erase line)
    assert "\rsubmitting " in drawn and "\rwaiting " in drawn and " 3/3 " in drawn
    assert "[submitting" not in err  # a bar, not the plain lines
    assert err.endswith("\x1b[2K")  # and taken away at the end (the line erased)
    assert out.count(" succeeded ") == 3
    ids = [line.split(" -> ")[1].split()[0] for line in out.splitlines()]
    code, out, err = run_on_terminal(urls, "watch", *ids)
    assert code == 0, err
    table = visible(out)
    assert table.lstrip().startswith("3 jobs: 3 succeeded") and all(i in table for i in ids)
    assert table.rstrip().endswith("255 B")  # the last drawing stays on screen


def visible(drawn: str) -> str:
    """What a terminal shows of these bytes, but for colours and cursor moves (CSI
    sequences); carriage returns and newlines stay."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", drawn)


class Terminal(io.StringIO):
    """What rich draws, kept: a stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_progress_bar_shows_phase_count_and_failures() -> None:
    screen = Terminal()
    progress = Progress(screen, enabled=True)
    progress.begin("waiting", 14)
    for n in range(7):
        progress.advance(f"file {n}", failed=n == 3)
    progress.bar.refresh()
    drawn = screen.getvalue()
    progress.close()
    last = drawn.rsplit("waiting", 1)[1]
    assert "7/14" in last and "1 failed" in last
    assert "[waiting" not in screen.getvalue()  # a bar, not the plain lines
    assert screen.getvalue().endswith("\x1b[2K")  # taken away at the end

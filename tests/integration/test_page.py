"""The web page status serves at GET /, driven in headless Debian Chromium against the real
local stack: upload several images through it, see their thumbnails; see a refused file's
message; open a job and see its timings; with API keys, the page asks for one. Saves a
screenshot to build/screenshot.png (`make screenshot` copies it to docs/ for the README; the
tests never touch tracked files)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from PIL import Image, ImageDraw
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from werkzeug.serving import make_server

from tests.support.images import encode, heic, marked
from tests.support.stackutil import running_stack
from thumbnails import status, upload
from thumbnails.core import web
from thumbnails.core.config import Config
from thumbnails.core.jobs import Job, JobStatus, JobStore

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "build" / "screenshot.png"
API_KEY = "page-test-key"
DEADLINE = 20.0


DROP = """
const [data, name, type] = arguments;
const file = new File([Uint8Array.from(atob(data), (c) => c.charCodeAt(0))], name, {type});
const transfer = new DataTransfer();
transfer.items.add(file);
for (const kind of ["dragenter", "dragover", "drop"]) {
  document.getElementById("dropzone").dispatchEvent(
    new DragEvent(kind, {dataTransfer: transfer, bubbles: true, cancelable: true}));
}
"""


def wait_for(check: Callable[[], Any], what: str, timeout: float = DEADLINE) -> Any:
    """check() until it returns something truthy; fail naming `what` after the deadline."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except WebDriverException as exc:  # an element replaced while we looked at it
            last_error = exc
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout}s: {what}" + (f" ({last_error})" if last_error
                                                               else ""))


@pytest.fixture(scope="module")
def stack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("page-stack")


@pytest.fixture(scope="module")
def urls(stack_dir: Path) -> Iterator[dict[str, str]]:
    with running_stack(Config(), stack_dir) as stack_urls:
        yield stack_urls


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three images unlike each other, and a text file."""
    folder = tmp_path_factory.mktemp("page-files")
    sunset = Image.new("RGB", (480, 320))
    draw = ImageDraw.Draw(sunset)
    for y in range(320):
        draw.line([(0, y), (480, y)], fill=(250 - y // 3, 120 + y // 4, 60 + y // 2))
    draw.ellipse((180, 150, 300, 270), fill=(255, 236, 160))
    draw.rectangle((0, 250, 480, 320), fill=(40, 50, 90))
    dot = Image.new("RGBA", (300, 300), (0, 0, 0, 0))
    ImageDraw.Draw(dot).ellipse((30, 30, 270, 270), fill=(30, 160, 90, 255))
    made = {
        "sunset.png": encode(sunset, "PNG"),
        "marked.jpg": encode(marked(), "JPEG", quality=90),
        "dot.png": encode(dot, "PNG"),
        "notes.txt": b"not an image, just some words\n",
    }
    paths = {}
    for name, data in made.items():
        paths[name] = folder / name
        paths[name].write_bytes(data)
    return paths


def job_card(browser: WebDriver, name: str) -> WebElement | None:
    for card in browser.find_elements(By.CSS_SELECTOR, "#jobs li.job"):
        if card.find_element(By.CSS_SELECTOR, ".job-name").text == name:
            return card
    return None


def thumbnail_size(browser: WebDriver, name: str) -> tuple[int, int] | None:
    """The natural size of the thumbnail <img> shown for `name`, once it has loaded."""
    card = job_card(browser, name)
    if card is None or card.get_attribute("data-status") != "succeeded":
        return None
    size = browser.execute_script(
        "const img = arguments[0].querySelector('img');"
        "return img && img.complete && img.naturalWidth > 0"
        " ? [img.naturalWidth, img.naturalHeight] : null;", card)
    return tuple(size) if size else None


def set_value(browser: WebDriver, element_id: str, value: str) -> None:
    element = browser.find_element(By.ID, element_id)
    if element.tag_name == "select":
        browser.execute_script("arguments[0].value = arguments[1];", element, value)
    else:
        element.clear()
        element.send_keys(value)


def page_errors(browser: WebDriver, *expected: int) -> list[str]:
    """Console errors since the last call, less the lines of answers a test expects."""
    lines = [f"the server responded with a status of {code}" for code in expected]
    return [entry["message"] for entry in browser.get_log("browser")
            if entry["level"] == "SEVERE" and not any(line in entry["message"]
                                                      for line in lines)]


def test_the_page_uploads_images_and_shows_their_thumbnails(
        browser: WebDriver, urls: dict[str, str], files: dict[str, Path]) -> None:
    browser.get(urls["status"] + "/")
    assert browser.title == "Thumbnails"
    main = browser.find_element(By.ID, "app")
    assert main.get_attribute("data-upload-url") == urls["upload"]
    set_value(browser, "opt-width", "160")
    set_value(browser, "opt-height", "120")
    set_value(browser, "opt-format", "png")
    picker = browser.find_element(By.CSS_SELECTOR, "input[type=file][multiple]")
    images = ("sunset.png", "marked.jpg", "dot.png")
    picker.send_keys("\n".join(str(files[name]) for name in images[:2]))
    # The third one dropped on the page, as a drag from the desktop would.
    browser.execute_script(DROP, base64.b64encode(files["dot.png"].read_bytes()).decode(),
                           "dot.png", "image/png")

    sizes = {name: wait_for(lambda n=name: thumbnail_size(browser, n),  # type: ignore[misc]
                            f"the thumbnail of {name} shown") for name in images}
    # The options chosen on the page reached the service: 160x120 boxes, contain.
    assert sizes == {"sunset.png": (160, 107), "marked.jpg": (160, 120), "dot.png": (120, 120)}
    accepted = browser.find_elements(By.CSS_SELECTOR, "#uploads li[data-state=accepted]")
    assert len(accepted) == 3
    listed = requests.get(f"{urls['status']}/jobs", timeout=10).json()
    assert {job["status"] for job in listed} == {"succeeded"} and len(listed) == 3
    summary = browser.find_element(By.ID, "jobs-summary").text
    assert summary == "3 succeeded"
    assert page_errors(browser) == []


def test_a_refused_file_shows_the_servers_message(
        browser: WebDriver, urls: dict[str, str], files: dict[str, Path]) -> None:
    direct = requests.post(f"{urls['upload']}/jobs",
                           files={"file": ("notes.txt", io.BytesIO(b"just words\n"))}, timeout=10)
    assert direct.status_code == 415
    message = direct.json()["message"]
    browser.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(str(files["notes.txt"]))

    def refusal() -> str | None:
        for item in browser.find_elements(By.CSS_SELECTOR, "#uploads li[data-state=refused]"):
            if "notes.txt" in item.text:
                return str(item.text)
        return None

    text = wait_for(refusal, "the refusal of notes.txt shown")
    assert f"415 unsupported_type: {message}" in text
    assert browser.find_element(By.CSS_SELECTOR, "#uploads li[data-state=refused]") \
        .get_attribute("role") == "alert"
    assert len(requests.get(f"{urls['status']}/jobs", timeout=10).json()) == 3, "a job was made"
    assert page_errors(browser, 415) == []


def test_a_jobs_detail_shows_its_timings(browser: WebDriver, urls: dict[str, str]) -> None:
    card = job_card(browser, "marked.jpg")
    assert card is not None
    job_id = card.get_attribute("data-job-id")
    debug = requests.get(f"{urls['status']}/jobs/{job_id}/debug", timeout=10).json()
    card.find_element(By.TAG_NAME, "button").click()

    detail = browser.find_element(By.ID, "detail")
    wait_for(lambda: detail.is_displayed() and detail.find_elements(
        By.CSS_SELECTOR, f".detail-content[data-job-id='{job_id}'] table.stages"),
        "the detail of marked.jpg with its stage timings")
    facts = dict(zip((dt.text for dt in detail.find_elements(By.CSS_SELECTOR, "dt")),
                     (dd.text for dd in detail.find_elements(By.CSS_SELECTOR, "dd")), strict=True))
    assert facts["Status"].lower() == "succeeded" and facts["Job id"] == job_id
    for when in ("Created", "Started", "Finished"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}", facts[when]), facts
    assert _close(facts["Processing time"], debug["processing_time_ms"]), facts
    assert facts["Original"].startswith("JPEG 400×300")
    assert facts["Thumbnail"].startswith("image/png 160×120")
    stages = {row.get_attribute("data-stage"): row.find_element(By.CSS_SELECTOR, "td.num").text
              for row in detail.find_elements(By.CSS_SELECTOR, "table.stages tbody tr")}
    assert stages.keys() == debug["stages_ms"].keys()
    for name, value in debug["stages_ms"].items():
        assert _close(stages[name], value), (name, stages[name], value)
    wait_for(lambda: browser.execute_script(
        "const img = document.querySelector('#detail .detail-thumb img');"
        "return img && img.naturalWidth === 160;"), "the thumbnail in the detail")
    download = browser.find_element(By.CSS_SELECTOR, "#detail .detail-thumb a[download]")
    assert download.get_attribute("download") == "marked-thumbnail.png"  # the PNG it is
    assert page_errors(browser) == []

    # The artefact: the page with its jobs, the refusal and a job's detail.
    browser.execute_script("window.scrollTo(0, 0)")
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {  # the whole page
        "width": 1280, "height": min(int(height), 2000), "deviceScaleFactor": 1,
        "mobile": False})
    time.sleep(0.3)  # the smooth scroll and the new size settle
    SCREENSHOT.parent.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(SCREENSHOT))
    browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    with Image.open(SCREENSHOT) as shot:
        assert shot.width == 1280 and shot.height >= 700


def _close(shown: str, ms: float) -> bool:
    """The page shows `ms` as "12 ms", "3.4 ms" or "1.23 s": the same value, rounded."""
    number, unit = shown.split()
    value = float(number) * (1000 if unit == "s" else 1)
    return abs(value - ms) <= (5 if unit == "s" else 0.5)


def test_preflight_allows_the_pages_upload(urls: dict[str, str]) -> None:
    origin = urls["status"]
    answer = requests.options(f"{urls['upload']}/jobs", timeout=10, headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "accept,idempotency-key,x-api-key"})
    assert answer.status_code == 204
    assert answer.headers["Access-Control-Allow-Origin"] == origin
    allowed = {h.strip().lower() for h in answer.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"idempotency-key", "x-api-key"} <= allowed  # Accept is always allowed
    assert "POST" in answer.headers["Access-Control-Allow-Methods"]
    other = requests.options(f"{urls['upload']}/jobs", timeout=10, headers={
        "Origin": "http://elsewhere.example", "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_with_api_keys_the_page_is_open_and_asks_for_a_key(
        browser: WebDriver, urls: dict[str, str], stack_dir: Path, tmp_path: Path) -> None:
    """status with API_KEY_HASHES over the stack's Redis and objects: the page and its
    files load without a key; the API needs one; the page asks, and then lists the jobs
    and fetches their thumbnails with it."""
    config = Config(redis_url=urls["redis"], data_dir=tmp_path,
                    upload_base_url=urls["upload"] + "/",
                    api_key_hashes=hashlib.sha256(API_KEY.encode()).hexdigest())
    app = status.create_app(config)
    client = app.test_client()
    page = client.get("/")
    assert page.status_code == 200 and b'data-key-required="true"' in page.data
    assert f'data-upload-url="{urls["upload"]}"'.encode() in page.data
    assert f"connect-src 'self' {urls['upload']};" in page.headers["Content-Security-Policy"]
    for asset in ("/static/app.js", "/static/app.css"):
        assert client.get(asset).status_code == 200, asset
    assert client.get("/jobs").status_code == 401
    hostile = replace(config, upload_base_url='http://x/"><script>')
    injected = status.create_app(hostile).test_client().get("/").data
    assert b"<script>" not in injected and b"&#34;&gt;&lt;script&gt;" in injected  # Jinja

    # Over the stack's Redis and objects, so the page lists the key's jobs and gets their
    # thumbnails. With API keys on, a key lists only the jobs it uploaded: three, made here
    # by an upload with the same keys, sending its events to the stack's broker.
    sending = upload.create_app(replace(config, data_dir=stack_dir / "objects",
                                        sink_url=urls["broker"]))
    web.start_background(sending)  # its outbox thread, as gunicorn's hook starts it
    keyed_upload = sending.test_client()
    served = status.create_app(replace(config, data_dir=stack_dir / "objects"))
    mine = []
    for colour in ("red", "green", "blue"):
        answer = keyed_upload.post("/jobs", headers={"X-API-Key": API_KEY}, data={
            "file": (io.BytesIO(encode(Image.new("RGB", (40, 30), colour), "PNG")), "a.png")})
        assert answer.status_code == 202, answer.json
        mine.append(answer.json["job_id"])
    checker = served.test_client()
    wait_for(lambda: all(checker.get(f"/jobs/{j}", headers={"X-API-Key": API_KEY}).json[
        "status"] == "succeeded" for j in mine), "the key's three jobs done")
    server = make_server("127.0.0.1", 0, served, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        browser.get(f"http://127.0.0.1:{server.server_port}/")
        key_input = browser.find_element(By.ID, "api-key")
        wait_for(key_input.is_displayed, "the API key prompt")
        key_input.send_keys("wrong-key\n")
        wait_for(lambda: "refused" in browser.find_element(By.ID, "key-message").text,
                 "the wrong key refused")
        key_input.send_keys(API_KEY + "\n")
        wait_for(lambda: not key_input.is_displayed(), "the key prompt closed")
        # Another origin, so the file names this browser remembers are not known there.
        wait_for(lambda: browser.execute_script(
            "return Array.from(document.querySelectorAll('#jobs li.job img'))"
            ".filter(img => img.complete && img.naturalWidth > 0).length") == 3,
            "the three thumbnails fetched with the key")
        # Live changes come through the fetch() stream that sends the key.
        store = JobStore(redis.Redis.from_url(urls["redis"]))
        job = Job(job_id=str(uuid.uuid4()), created_at=time.time())
        store.create(job, b"", check_at=time.time() + 3600)
        wait_for(lambda: browser.execute_script(
            "return !!document.querySelector(`li[data-job-id='${arguments[0]}']`)",
            job.job_id), "a new job shown from the keyed event stream")
        store.redis.close()
        assert page_errors(browser, 401) == []
    finally:
        server.shutdown()
        thread.join(timeout=10)
    # The stack is the module's: the key's jobs would show (and 404) on its keyless page.
    for job_id in mine:
        assert checker.delete(f"/jobs/{job_id}", headers={"X-API-Key": API_KEY}).status_code \
            == 204


def test_the_page_asks_for_renditions_and_shows_each(
        browser: WebDriver, urls: dict[str, str], files: dict[str, Path]) -> None:
    browser.get(urls["status"] + "/")
    wait_for(lambda: browser.execute_script(  # the script has run: the list is drawn
        "return !document.getElementById('jobs-empty').hidden"
        " || document.querySelector('#jobs li.job') !== null"), "the job list drawn")
    area = browser.find_element(By.ID, "opt-renditions")
    area.send_keys("avatar:64x64:png:cover\nsmall:120x120:webp")
    assert not browser.find_element(By.ID, "opt-width").is_enabled()  # replaced meanwhile
    renamed = files["sunset.png"].with_name("sunset-renditions.png")
    shutil.copyfile(files["sunset.png"], renamed)
    browser.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(str(renamed))
    card = wait_for(lambda: (c := job_card(browser, renamed.name)) is not None
                    and c.get_attribute("data-status") == "succeeded" and c,
                    "the renditions job succeeded")
    job_id = card.get_attribute("data-job-id")
    doc = requests.get(f"{urls['status']}/jobs/{job_id}", timeout=10).json()
    # What the page sent: 480x320 covering 64x64 is 64x64; inside 120x120, 120x80.
    assert [(r["name"], r["width"], r["height"], r["content_type"])
            for r in doc["renditions"]] == [("avatar", 64, 64, "image/png"),
                                            ("small", 120, 80, "image/webp")]
    card.find_element(By.TAG_NAME, "button").click()

    def shown() -> dict[str, list[Any]] | None:
        found = browser.execute_script(
            "const out = {};"
            "for (const li of document.querySelectorAll('#detail .rendition')) {"
            "  const img = li.querySelector('img'), a = li.querySelector('a[download]');"
            "  if (!img || !img.complete || !img.naturalWidth || !a) return null;"
            "  out[li.dataset.name] = [img.naturalWidth, img.naturalHeight,"
            "                          a.getAttribute('download')];"
            "}"
            "return Object.keys(out).length ? out : null;")
        return dict(found) if found else None

    assert wait_for(shown, "each rendition shown with a download link") == {
        "avatar": [64, 64, "sunset-renditions-avatar.png"],
        "small": [120, 80, "sunset-renditions-small.webp"]}
    assert page_errors(browser) == []
    area.clear()
    browser.execute_script("arguments[0].dispatchEvent(new Event('input'))", area)
    assert browser.find_element(By.ID, "opt-width").is_enabled()


def test_the_page_sends_format_gravity_and_quality(
        browser: WebDriver, urls: dict[str, str], tmp_path: Path) -> None:
    """AVIF, a west crop and a quality chosen on the page reach the service (a HEIC file)."""
    photo = tmp_path / "phone.heic"
    photo.write_bytes(heic(marked((600, 200))))  # red top-left quadrant
    browser.get(urls["status"] + "/")
    set_value(browser, "opt-format", "png")
    browser.execute_script("arguments[0].dispatchEvent(new Event('change'))",
                           browser.find_element(By.ID, "opt-format"))
    assert not browser.find_element(By.ID, "opt-quality").is_enabled()  # PNG: no quality
    set_value(browser, "opt-width", "60")
    set_value(browser, "opt-height", "60")
    set_value(browser, "opt-format", "avif")
    browser.execute_script("arguments[0].dispatchEvent(new Event('change'))",
                           browser.find_element(By.ID, "opt-format"))
    set_value(browser, "opt-fit", "cover")
    set_value(browser, "opt-gravity", "west")
    set_value(browser, "opt-quality", "70")
    browser.find_element(By.CSS_SELECTOR, "input[type=file][multiple]").send_keys(str(photo))
    size = wait_for(lambda: thumbnail_size(browser, "phone.heic"), "the AVIF thumbnail shown")
    assert size == (60, 60)
    [job] = [j for j in requests.get(f"{urls['status']}/jobs?limit=100", timeout=10).json()
             if requests.get(f"{urls['status']}/jobs/{j['job_id']}", timeout=10)
             .json()["options"].get("format") == "avif"]  # renditions jobs have none
    doc = requests.get(f"{urls['status']}/jobs/{job['job_id']}", timeout=10).json()
    assert doc["options"] == {"width": 60, "height": 60, "format": "avif", "fit": "cover",
                              "gravity": "west", "quality": 70}
    assert doc["thumbnail"]["content_type"] == "image/avif"
    assert page_errors(browser) == []


# Recorded before the page's own script runs: every EventSource it opens, every fetch.
RECORD = """
window.__streams = []; window.__fetches = [];
const Original = window.EventSource;
window.EventSource = function (url, init) {
  const source = new Original(url, init);
  window.__streams.push(source);
  return source;
};
window.EventSource.prototype = Original.prototype;
const originalFetch = window.fetch;
window.fetch = function (input, init) {
  window.__fetches.push(String(input));
  return originalFetch.call(this, input, init);
};
"""


def test_the_page_follows_the_event_stream_without_polling(browser: WebDriver,
                                                           urls: dict[str, str]) -> None:
    """A job sent from elsewhere shows up and changes on the page through its EventSource;
    the page reads the job list once and never again."""
    added = browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RECORD})
    store = JobStore(redis.Redis.from_url(urls["redis"]))
    try:
        browser.get(urls["status"] + "/")
        wait_for(lambda: browser.execute_script(
            "return window.__streams.length === 1 && window.__streams[0].readyState === 1"),
            "the page's EventSource open")
        assert browser.execute_script("return window.__streams[0].url") == \
            urls["status"] + "/events"
        job = Job(job_id=str(uuid.uuid4()), created_at=time.time())
        store.create(job, b"", check_at=time.time() + 3600)

        def badge() -> str | None:
            return browser.execute_script(  # type: ignore[no-any-return]
                "const li = document.querySelector(`li[data-job-id='${arguments[0]}']`);"
                "return li ? li.dataset.status : null;", job.job_id)

        wait_for(lambda: badge() == "queued", "the new job listed, queued")
        time.sleep(2.5)  # not waiting for state: time in which a poller would ask again
        store.claim(job.job_id, "t", 60, 3)
        store.finish(job.job_id, "t", JobStatus.FAILED, error_code="x", error_message="y",
                     finished_at=time.time())
        wait_for(lambda: badge() == "failed", "the job shown failed")
        lists = [url for url in browser.execute_script("return window.__fetches")
                 if url.startswith("jobs?")]
        assert lists == ["jobs?limit=100"], lists  # one page: this stack has fewer jobs
        assert page_errors(browser) == []
    finally:
        browser.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument",
                                {"identifier": added["identifier"]})
        store.redis.close()


def summary_from_the_api(status_url: str) -> str:
    """The summary the page should show, from every page of GET /jobs (30 a page)."""
    counts: dict[str, int] = {}
    url: str | None = f"{status_url}/jobs?limit=30"
    while url:
        answer = requests.get(url, timeout=10)
        assert answer.status_code == 200, answer.text
        for job in answer.json():
            counts[job["status"]] = counts.get(job["status"], 0) + 1
        url = answer.links.get("next", {}).get("url")
    return " · ".join(f"{counts[name]} {name}"
                      for name in ("queued", "processing", "succeeded", "failed") if name in counts)


def test_with_many_jobs_the_page_counts_them_all_and_shows_the_detail(
        browser: WebDriver, urls: dict[str, str]) -> None:
    """More jobs than one page holds: the summary counts every job (the page follows
    X-Next-Cursor), and the oldest job's detail opens within the window."""
    store = JobStore(redis.Redis.from_url(urls["redis"]))
    try:
        for n in range(120):
            job = Job(job_id=str(uuid.uuid4()), created_at=time.time() - 3600 + n)
            store.create(job, b"", check_at=time.time() + 3600)
            store.claim(job.job_id, "t", 60, 3)
            store.finish(job.job_id, "t", JobStatus.FAILED, error_code="x",
                         error_message="y", finished_at=time.time())
    finally:
        store.redis.close()
    expected = summary_from_the_api(urls["status"])
    total = sum(int(part.split()[0]) for part in expected.split(" · "))
    assert total > 100, expected  # more than the page's first GET /jobs page
    browser.get(urls["status"] + "/")
    wait_for(lambda: browser.find_element(By.ID, "jobs-summary").text == expected,
             f"the summary {expected!r}")
    cards = browser.find_elements(By.CSS_SELECTOR, "#jobs li.job")
    assert len(cards) == total
    browser.execute_script("window.scrollTo(0, 0); arguments[0].click();",
                           cards[-1].find_element(By.TAG_NAME, "button"))

    def detail_in_view() -> bool:
        return bool(browser.execute_script(
            "const d = document.getElementById('detail');"
            "const r = d.querySelector('h2').getBoundingClientRect();"
            "return !d.hidden && r.top >= 0 && r.bottom <= window.innerHeight"
            " && document.querySelector('#detail .detail-content[data-job-id]') !== null;"))

    wait_for(detail_in_view, "the detail's heading within the window")


def test_file_names_outlast_the_tab(browser: WebDriver, urls: dict[str, str]) -> None:
    """The names of files uploaded in the first test show in a new tab (kept in
    localStorage by job id, not for the tab's life only)."""
    listed = {}
    url: str | None = f"{urls['status']}/jobs?limit=1000"
    while url:
        answer = requests.get(url, timeout=10)
        listed |= {job["job_id"]: job for job in answer.json()}
        url = answer.links.get("next", {}).get("url")
    first_tab = browser.current_window_handle
    browser.switch_to.new_window("tab")
    try:
        browser.get(urls["status"] + "/")
        for name in ("sunset.png", "marked.jpg", "dot.png"):
            card = wait_for(lambda n=name: job_card(browser, n),  # type: ignore[misc]
                            f"the card named {name} in a new tab")
            assert card.get_attribute("data-job-id") in listed
        stored = browser.execute_script(
            "return JSON.parse(localStorage.getItem('thumbnails.names'))")
        assert {"dot.png", "marked.jpg", "sunset.png"} <= set(stored.values()), stored
        assert set(stored) <= set(listed)
    finally:
        browser.close()
        browser.switch_to.window(first_tab)


def test_kept_file_names_are_bounded(browser: WebDriver, urls: dict[str, str],
                                     files: dict[str, Path]) -> None:
    """localStorage keeps the newest 500 names: 600 old ones stored, one upload later 500
    remain, the new one among them and the oldest gone."""
    browser.get(urls["status"] + "/")
    old = [f"00000000-0000-4000-8000-{n:012d}" for n in range(600)]
    browser.execute_script(
        "localStorage.setItem('thumbnails.names', JSON.stringify(Object.fromEntries("
        "arguments[0].map((id, n) => [id, `old-${n}.png`]))))", old)
    browser.get(urls["status"] + "/")  # the page reads the 600
    browser.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(str(files["dot.png"]))

    def kept() -> dict[str, str] | None:
        stored = browser.execute_script(
            "return JSON.parse(localStorage.getItem('thumbnails.names'))")
        return stored if set(stored) - set(old) else None

    stored = wait_for(kept, "the uploaded file's name kept")
    [new] = set(stored) - set(old)
    assert stored[new] == "dot.png" and len(stored) == 500
    assert set(stored) - {new} == set(old[-499:])  # the newest of the old ones


# Opens each operation, once (a second click would close it before it shows open), then
# reads what each shows.
OPERATIONS_SHOWN = """
for (const op of document.querySelectorAll("#swagger-ui .opblock:not([data-opened])")) {
  op.dataset.opened = "yes";
  op.querySelector(".opblock-summary-control").click();
}
return Object.fromEntries([...document.querySelectorAll("#swagger-ui .opblock")].map((op) => [
  op.id,
  {responses: [...op.querySelectorAll(".responses-table tr.response")].map((r) => r.dataset.code),
   parameters: [...op.querySelectorAll(".parameters tr[data-param-name]")]
     .map((r) => `${r.dataset.paramIn} ${r.dataset.paramName}`)}]));
"""


@pytest.mark.parametrize("function", ["upload", "status"])
def test_api_docs_render_every_operation(browser: WebDriver, urls: dict[str, str],
                                         function: str) -> None:
    """Swagger UI at /docs (thumbnails.core.apidocs) shows one block per operation of the
    function's /openapi.json, and, opened, each block's parameters and response codes as
    the document has them; it loads every file from the function itself (nothing from
    elsewhere: the check lists what the browser fetched) and logs no error (a refusal by
    the page's Content-Security-Policy would be one)."""
    base = urls[function]
    page_errors(browser)  # forget the lines of the tests before
    spec = requests.get(f"{base}/openapi.json", timeout=10).json()

    def parameter(node: dict[str, Any]) -> str:
        if "$ref" in node:
            node = spec["components"]["parameters"][node["$ref"].rsplit("/", 1)[1]]
        return f"{node['in']} {node['name']}"

    expected = {f"operations-{op['tags'][0]}-{op['operationId']}": {
                    "responses": sorted(op["responses"]),
                    "parameters": sorted(parameter(p) for p in op.get("parameters", []))}
                for item in spec["paths"].values() for method, op in item.items()
                if method in ("get", "post", "put", "patch", "delete")}
    browser.get(f"{base}/docs")

    last: dict[str, Any] = {}

    def shown() -> bool:
        found = browser.execute_script(OPERATIONS_SHOWN)
        last.update({op_id: {key: sorted(values) for key, values in facts.items()}
                     for op_id, facts in found.items()})
        return last == expected

    with contextlib.suppress(AssertionError):  # the comparison below says what differs
        wait_for(shown, "the operations' parameters and responses")
    assert {k: v for k, v in last.items() if expected.get(k) != v} == {}, \
        {k: v for k, v in expected.items() if last.get(k) != v}
    assert browser.title == f"{spec['info']['title']} API"
    fetched = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
    assert f"{base}/openapi.json" in fetched and f"{base}/docs/swagger-ui/swagger-ui.css" in fetched
    assert all(url.startswith(f"{base}/") for url in fetched), fetched
    assert page_errors(browser) == []

"""Signed webhooks (issue 12 §2): callback_url, Standard Webhooks signatures checked with the
`standardwebhooks` verifier, the Knative Trigger on the real local stack, retries, no SSRF."""

from __future__ import annotations

import base64
import ipaddress
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
import yaml
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.support.images import encode, marked
from tests.support.stackutil import job_debug, poll, running_stack, submit, wait_terminal
from tests.support.subscriber import Receiver
from thumbnails.core import events, webhooks
from thumbnails.core.config import Config, ConfigError
from thumbnails.core.jobs import Job, JobStatus
from thumbnails.core.services import build_services
from thumbnails.core.webhooks import AllowedHosts, CallbackRefused
from thumbnails.local.broker.settings import BrokerSettings
from thumbnails.status.app import create_app

# A fixed test secret: "whsec_" + base64 of 32 bytes (the spec's format).
SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
KNATIVE = Path(__file__).resolve().parents[2] / "knative"
TRIGGER = "trigger-status-webhooks-on-thumbnail-events.yaml"


def knative_dir(tmp_path: Path, retry: int, backoff: str) -> Path:
    """knative/ with the webhook Trigger's delivery changed (so the broker gives up soon)."""
    copy = tmp_path / "knative"
    shutil.copytree(KNATIVE, copy)
    doc = yaml.safe_load((copy / TRIGGER).read_text())
    doc["spec"]["delivery"].update(retry=retry, backoffDelay=backoff, backoffPolicy="linear")
    (copy / TRIGGER).write_text(yaml.safe_dump(doc))
    return copy


def image() -> bytes:
    return encode(marked((64, 48)), "PNG")


def metric(urls: dict[str, str], outcome: str) -> float:
    text = requests.get(f"{urls['status']}/metrics", timeout=10).text
    line = f'thumbnails_webhook_deliveries_total{{outcome="{outcome}"}}'
    return next((float(row.split()[-1]) for row in text.splitlines() if row.startswith(line)),
                0.0)


# ---- allowed hosts and addresses (no network) -------------------------------------------

def test_allowed_hosts_name_patterns_never_admit_private_addresses() -> None:
    allowed = AllowedHosts.parse("*.example.com, hooks.partner.io, *")
    assert allowed.name_allowed("a.example.com") and allowed.name_allowed("HOOKS.partner.io")
    for literal in ("127.0.0.1", "10.1.2.3", "169.254.169.254", "::1", "192.168.0.1",
                    "fd00::1", "0.0.0.0"):
        # "*" matches any name, yet an address outside the public internet needs naming.
        assert not allowed.name_allowed(literal), literal
        assert not allowed.address_allowed("a.example.com", ipaddress.ip_address(literal))
    assert allowed.address_allowed("a.example.com", ipaddress.ip_address("93.184.215.14"))


def test_explicit_addresses_and_networks_admit_what_they_name() -> None:
    allowed = AllowedHosts.parse("127.0.0.1,10.0.0.0/8")
    assert allowed.name_allowed("127.0.0.1") and allowed.name_allowed("10.9.8.7")
    assert not allowed.name_allowed("127.0.0.2")
    assert not allowed.name_allowed("example.com")  # no name pattern at all


@pytest.mark.parametrize("url", [
    "ftp://hooks.example.com/x", "http:///x", "http://user:pw@hooks.example.com/",
    "http://hooks.example.com:99999/", "http://hooks.example.com/a b", "javascript:alert(1)",
    "http://evil.test/", "http://" + "a" * 2100 + ".example.com/",
])
def test_check_url_refuses(url: str) -> None:
    with pytest.raises(CallbackRefused):
        webhooks.check_url(url, AllowedHosts.parse("*.example.com"))


def test_no_callbacks_without_allowed_hosts() -> None:
    with pytest.raises(CallbackRefused, match="WEBHOOK_ALLOWED_HOSTS"):
        webhooks.check_url("https://hooks.example.com/", AllowedHosts.parse(""))


def test_the_resolved_address_is_checked() -> None:
    # "localhost" passes the name check, but its address is loopback, which "localhost"
    # does not name: refused at delivery. Naming the address admits it.
    with pytest.raises(CallbackRefused, match="resolves to"):
        webhooks.resolve("http://localhost:9/x", AllowedHosts.parse("localhost"))
    both = AllowedHosts.parse("localhost,127.0.0.1,::1")
    address = webhooks.resolve("http://localhost:9/x", both)
    assert address.is_loopback


def test_the_connection_goes_to_the_checked_address(serve: Callable[[Receiver], Receiver]
                                                    ) -> None:
    """post() connects to the address given, with the URL's Host: no second DNS lookup (the
    name here resolves nowhere), so nothing can rebind the name in between."""
    receiver = serve(Receiver(statuses=[202]))
    port = receiver.hook.split(":")[2].split("/")[0]
    url = f"http://hooks.invalid:{port}/path?q=1"
    status = webhooks.post(url, ipaddress.ip_address("127.0.0.1"), b"{}", {}, timeout=5)
    assert status == 202
    headers, _ = receiver.requests[0]
    assert headers["Host"] == f"hooks.invalid:{port}"


def test_signatures_verify_with_the_standardwebhooks_verifier() -> None:
    body = webhooks.payload("t", {"job_id": "x"})
    headers = webhooks.signed_headers(SECRET, "msg_1", body)
    assert Webhook(SECRET).verify(body, headers)["data"] == {"job_id": "x"}
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body.replace(b'"x"', b'"y"'), headers)
    other = "whsec_" + base64.b64encode(bytes(32)).decode()
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(body, headers)


@pytest.mark.parametrize("environ, message", [
    ({"WEBHOOK_ALLOWED_HOSTS": "*"}, "WEBHOOK_SECRET is required"),
    ({"WEBHOOK_SECRET": "secret"}, "must start with 'whsec_'"),
    ({"WEBHOOK_SECRET": "whsec_!!!"}, "base64"),
    ({"WEBHOOK_SECRET": "whsec_" + base64.b64encode(b"short").decode()}, "24 bytes"),
])
def test_bad_webhook_settings_fail_fast(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Config.from_env(environ)


# ---- the real stack: upload, broker, resize, status -----------------------------------

@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    tmp = tmp_path_factory.mktemp("webhooks")
    config = Config(webhook_secret=SECRET, webhook_allowed_hosts="127.0.0.1,localhost")
    broker = BrokerSettings(knative_dir=knative_dir(tmp, retry=2, backoff="PT0.2S"))
    with running_stack(config, tmp / "stack", broker=broker) as urls:
        yield urls


def test_the_result_is_posted_signed_and_retried(stack: dict[str, str],
                                                 serve: Callable[[Receiver], Receiver]
                                                 ) -> None:
    receiver = serve(Receiver(statuses=[503, 200]))  # the first attempt fails
    before = metric(stack, "delivered")
    accepted = submit(stack, image(), callback_url=receiver.hook, width="20")
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["job_id"]
    job = wait_terminal(stack, job_id)
    assert job["status"] == "succeeded"
    poll(lambda: True if len(receiver.requests) >= 2 else None)
    (h1, b1), (h2, b2) = receiver.requests[:2]
    for headers, body in ((h1, b1), (h2, b2)):
        doc = Webhook(SECRET).verify(body, headers)
        assert doc["type"] == "dev.knative-thumbnails.thumbnail.generated"
        assert doc["data"]["job_id"] == job_id and doc["data"]["status"] == "succeeded"
        assert doc["data"]["thumbnail"]["width"] == 20  # the document GET /jobs/{id} shows
    assert h1["Webhook-Id"] == h2["Webhook-Id"]  # a retry is the same message
    debug = poll(lambda: d if (d := job_debug(stack, job_id))["webhook"]["outcome"]
                 == "delivered" else None)
    assert debug["webhook"]["attempts"] == 2 and debug["webhook"]["response"] == 200
    assert debug["status"] == "succeeded"
    assert metric(stack, "delivered") == before + 1


def test_a_failed_job_is_reported_too(stack: dict[str, str],
                                      serve: Callable[[Receiver], Receiver]) -> None:
    receiver = serve(Receiver())
    jpeg = encode(marked((200, 150)), "JPEG", quality=90)
    accepted = submit(stack, jpeg[: len(jpeg) // 2], callback_url=receiver.hook)
    assert accepted.status_code == 202, accepted.text  # the header is fine; the data is cut
    job_id = accepted.json()["job_id"]
    assert wait_terminal(stack, job_id)["status"] == "failed"
    poll(lambda: receiver.requests or None)
    headers, body = receiver.requests[0]
    doc = Webhook(SECRET).verify(body, headers)
    assert doc["type"] == "dev.knative-thumbnails.thumbnail.failed"
    assert doc["data"]["error"]["code"]


def test_a_receiver_that_never_answers_2xx_leaves_the_job_alone(
        stack: dict[str, str], serve: Callable[[Receiver], Receiver]) -> None:
    receiver = serve(Receiver(statuses=[500]))
    job_id = submit(stack, image(), callback_url=receiver.hook).json()["job_id"]
    assert wait_terminal(stack, job_id)["status"] == "succeeded"
    # 1 + 2 retries, then the dead letter (status /webhooks/dead-letter) notes it.
    debug = poll(lambda: d if (d := job_debug(stack, job_id))["webhook"]["outcome"]
                 == "gave_up" else None)
    assert len(receiver.requests) == 3
    assert debug["webhook"]["attempts"] == 4  # three failures and the dead letter
    assert debug["status"] == "succeeded"
    job = requests.get(f"{stack['status']}/jobs/{job_id}", timeout=10).json()
    assert job["status"] == "succeeded"


def test_a_name_whose_address_is_not_named_is_refused_at_delivery(
        redis_url: str, tmp_path: Path, serve: Callable[[Receiver], Receiver]) -> None:
    """WEBHOOK_ALLOWED_HOSTS=localhost admits the name at upload, but localhost resolves to a
    loopback address the list does not name: status refuses at delivery, notes it on the
    job, answers 204 (retrying cannot help), the receiver on that address gets nothing and
    the job stands. (status's app over a real Valkey, a real CloudEvent from the SDK.)"""
    receiver = serve(Receiver())
    port = receiver.hook.split(":")[2].split("/")[0]
    config = Config(redis_url=redis_url, data_dir=tmp_path, webhook_secret=SECRET,
                    webhook_allowed_hosts="localhost", debug_endpoint=True)
    services = build_services(config)
    services.jobs.redis.flushall()
    job = Job(job_id=str(uuid.uuid4()), status=JobStatus.FAILED, created_at=time.time(),
              finished_at=time.time(), error_code="invalid_image", error_message="cut short",
              callback_url=f"http://localhost:{port}/hooks")
    services.jobs.create(job, b"{}", check_at=time.time() + 60)
    event = events.new_event(services.event_types.thumbnail_failed, events.RESIZE_SOURCE,
                             {"job_id": job.job_id})
    headers, body = events.to_http(event)
    client = create_app(config, services=services).test_client()
    answer = client.post("/webhooks", headers=headers, data=body)
    assert answer.status_code == 204 and answer.data == b""
    debug = client.get(f"/jobs/{job.job_id}/debug").get_json()
    assert debug["webhook"]["outcome"] == "refused" and "resolves to" in debug["webhook"]["error"]
    assert debug["status"] == "failed"
    assert receiver.requests == []
    # An event that is no thumbnail event is the sender's mistake: 400, not a retry.
    wrong = events.new_event(services.event_types.image_uploaded, "/x", {"job_id": job.job_id})
    headers, body = events.to_http(wrong)
    answer = client.post("/webhooks", headers=headers, data=body)
    assert answer.status_code == 400 and answer.get_json()["error"] == "invalid_event"


def test_callback_urls_outside_the_allowed_hosts_are_refused_at_upload(
        stack: dict[str, str]) -> None:
    for url in ("http://10.0.0.1/hook", "http://169.254.169.254/latest/meta-data",
                "http://example.com/hook", "gopher://127.0.0.1/"):
        answer = submit(stack, image(), callback_url=url)
        assert answer.status_code == 400, url
        assert answer.json()["error"] == "callback_refused"

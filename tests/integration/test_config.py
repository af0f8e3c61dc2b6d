"""Settings declared once: each field names its environment variable, and reading,
round-tripping and checking are derived from the fields (Config and the broker's own)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from thumbnails.core.config import ENVIRONMENT, Config, ConfigError
from thumbnails.core.ranges import Range
from thumbnails.local.broker.settings import BrokerSettings


def test_every_field_names_one_variable_of_its_own() -> None:
    names = [f.metadata["env"] for cls in (Config, BrokerSettings)
             for f in dataclasses.fields(cls)]
    assert len(names) == len(set(names))
    assert ENVIRONMENT["K_SINK"] == "sink_url" and ENVIRONMENT["MAX_PIXELS"] == "max_pixels"
    # The broker's settings are not the service's.
    assert not {"KNATIVE_DIR", "BROKER_SUBSCRIBERS", "BROKER_CONCURRENCY"} & set(ENVIRONMENT)


def test_environment_round_trip_of_every_field() -> None:
    changed = Config(redis_url="redis://127.0.0.1:1/2", storage_backend="s3",
                     data_dir=Path("/srv/objects"), s3_endpoint="minio:9000",
                     s3_access_key="key", s3_secret_key="secret", s3_secure=True,
                     max_pixels=123, lease_seconds=2.5, retention_seconds=0.0,
                     debug_endpoint=True, link_ttl_seconds=7)
    env = changed.to_env()
    assert set(env) == set(ENVIRONMENT)
    assert (env["S3_SECURE"], env["DATA_DIR"], env["LEASE_SECONDS"]) == ("true", "/srv/objects",
                                                                        "2.5")
    assert Config.from_env(env) == changed
    broker = BrokerSettings(knative_dir=Path("/k"), subscribers="a=http://x", concurrency=3)
    assert broker.to_env() == {"KNATIVE_DIR": "/k", "BROKER_SUBSCRIBERS": "a=http://x",
                               "BROKER_CONCURRENCY": "3"}
    assert BrokerSettings.from_env(broker.to_env()) == broker


def test_unset_and_empty_variables_keep_the_defaults() -> None:
    assert Config.from_env({}) == Config()
    assert Config.from_env({"MAX_PIXELS": "", "LOG_LEVEL": ""}) == Config()
    assert BrokerSettings.from_env({"BROKER_CONCURRENCY": ""}) == BrokerSettings()


@pytest.mark.parametrize(("environ", "message"), [
    ({"MAX_PIXELS": "0"}, "MAX_PIXELS: must be an integer of at least 1"),
    ({"MAX_PIXELS": "1e6"}, "MAX_PIXELS: must be an integer of at least 1"),
    ({"MAX_ATTEMPTS": "-2"}, "MAX_ATTEMPTS: must be an integer of at least 1"),
    ({"LEASE_SECONDS": "0"}, "LEASE_SECONDS: must be a number above 0"),
    ({"LEASE_SECONDS": "nan"}, "LEASE_SECONDS: must be a number above 0"),
    ({"RETENTION_SECONDS": "-1"}, "RETENTION_SECONDS: must be a number of at least 0"),
    ({"S3_SECURE": "maybe"}, "S3_SECURE: not a boolean"),
    ({"STORAGE_BACKEND": "s3"}, "S3_ENDPOINT is required"),
])
def test_a_bad_value_fails_fast_naming_its_variable(environ: dict[str, str],
                                                   message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Config.from_env(environ)


def test_ranges_hold_for_a_config_built_in_code_too() -> None:
    with pytest.raises(ConfigError, match="MAX_FRAMES must be an integer of at least 1"):
        Config(max_frames=0).validate()
    with pytest.raises(ConfigError, match="BROKER_CONCURRENCY: must be an integer of at least 1"):
        BrokerSettings.from_env({"BROKER_CONCURRENCY": "0"})


@pytest.mark.parametrize(("allowed", "text", "expected"), [
    (Range(int, 1, 100), "1", 1),
    (Range(int, 1, 100), "100", 100),
    (Range(int, 1, 100), "0", None),
    (Range(int, 1, 100), "101", None),
    (Range(int, 1, 100), " 5", None),  # no space, sign or exponent in an integer
    (Range(int, 1, 100), "+5", None),
    (Range(int, 1, 100), "\u0665", None),  # ARABIC-INDIC DIGIT FIVE: a digit, not ASCII
    (Range(float, 0, 60, low_open=True), "60", 60.0),
    (Range(float, 0, 60, low_open=True), "0.001", 0.001),
    (Range(float, 0, 60, low_open=True), "0", None),
    (Range(float, 0, 60, low_open=True), "inf", None),
    (Range(float, 0, 60, low_open=True), "nan", None),
    (Range(float, 0, 60, low_open=True), "x", None),
    (Range(float, 0), "0", 0.0),
])
def test_range_parse(allowed: Range, text: str, expected: float | None) -> None:
    if expected is None:
        with pytest.raises(ValueError, match=f"^must be {allowed.describe()}$"):
            allowed.parse(text)
    else:
        assert allowed.parse(text) == expected
        assert type(allowed.parse(text)) is allowed.kind


def test_range_descriptions() -> None:
    assert Range(int, 1, 100).describe() == "an integer from 1 to 100"
    assert Range(int, 1).describe() == "an integer of at least 1"
    assert Range(float, 0, 60, low_open=True, unit="seconds").describe() == \
        "a number of seconds above 0 and at most 60"
    assert Range(float, 0, low_open=True).describe() == "a number above 0"

"""The Serving webhook mirrors (tests/support/webhooks) against Knative's own unit-test tables.

Inputs and expected error texts are copied from knative/serving knative-v1.23.0's tests, so
the expectations come from Knative, not from the mirrors:
- pkg/apis/autoscaling/annotation_validation_test.go TestValidateAnnotations;
- pkg/apis/serving/k8s_validation_test.go TestUserContainerValidation and
  getCommonContainerValidationTestCases (run as Go runs them: validateContainersPorts, then
  ValidateUserContainer, errors only, compared as FieldError.Error() text);
- pkg/apis/serving/v1/revision_defaults_test.go TestRevisionDefaulting.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.webhooks import autoscaling, podspec, serving
from tests.support.webhooks.config import DEFAULT, ENABLED, Config, new_defaults_config_from_map
from tests.support.webhooks.pkg_apis import error_text, errors_only

A = "autoscaling.knative.dev/"
MIN, MAX, ACT = A + "min-scale", A + "max-scale", A + "activation-scale"
CLASS, METRIC, ALGO = A + "class", A + "metric", A + "metric-aggregation-algorithm"
KPA, HPA = "kpa.autoscaling.knative.dev", "hpa.autoscaling.knative.dev"
PWP, PTP = A + "panic-window-percentage", A + "panic-threshold-percentage"
TARGET, TBC, TU = A + "target", A + "target-burst-capacity", A + "target-utilization-percentage"
WINDOW, RETENTION = A + "window", A + "scale-to-zero-pod-retention-period"
DELAY, INITIAL = A + "scale-down-delay", A + "initial-scale"

# (case name, annotations, expected Error() text, config-autoscaler changes)
ANNOTATION_CASES: list[tuple[str, dict[str, str], str, dict[str, Any]]] = [
    ("empty annotations", {}, "", {}),
    ("invalid class", {CLASS: "unsupported.knative.dev"},
     f"invalid value: unsupported.knative.dev: {CLASS}", {}),
    ("non-knative.dev domain class", {CLASS: "some.other.domain"}, "", {}),
    ("minScale is 0", {MIN: "0"}, "", {}),
    ("maxScale is 0", {MAX: "0"}, "", {}),
    ("minScale is -1", {MIN: "-1"}, f"expected 0 <= -1 <= 2147483647: {MIN}", {}),
    ("maxScale is huuuuuuuge", {MAX: "2147483648"},
     f"expected 0 <= 2147483648 <= 2147483647: {MAX}", {}),
    ("maxScale is -1", {MAX: "-1"}, f"expected 0 <= -1 <= 2147483647: {MAX}", {}),
    ("minScale is foo", {MIN: "foo"}, f"invalid value: foo: {MIN}", {}),
    ("maxScale is bar", {MAX: "bar"}, f"invalid value: bar: {MAX}", {}),
    ("max/minScale is bar", {MAX: "bar", MIN: "bar"}, f"invalid value: bar: {MAX}, {MIN}", {}),
    ("minScale is 5", {MIN: "5"}, "", {}),
    ("maxScale is 2", {MAX: "2"}, "", {}),
    ("minScale is 2, maxScale is 5", {MIN: "2", MAX: "5"}, "", {}),
    ("minScale is 5, maxScale is 2", {MIN: "5", MAX: "2"},
     f"max-scale=2 is less than min-scale=5: {MAX}, {MIN}", {}),
    ("minScale is 0, maxScale is 0", {MIN: "0", MAX: "0"}, "", {}),
    ("maxScale is greater than MaxScaleLimit", {MAX: "11"}, f"expected 1 <= 11 <= 10: {MAX}",
     {"max_scale_limit": 10}),
    ("maxScale is explicitly 0 with a MaxScaleLimit", {MAX: "0"},
     f"max-scale=0 (unlimited), must be less than 10: {MAX}", {"max_scale_limit": 10}),
    ("maxScale is not set with a MaxScaleLimit", {}, "", {"max_scale_limit": 10}),
    ("maxScale is less than MaxScaleLimit", {MAX: "9"}, "", {"max_scale_limit": 10}),
    ("min, activation and max scale set appropriately", {MIN: "1", ACT: "2", MAX: "3"}, "", {}),
    ("min-scale is greater than activation-scale", {MIN: "3", ACT: "2"},
     f"min-scale=3 is greater than activation-scale=2: {ACT}", {}),
    ("max-scale is less than activation-scale", {MAX: "1", ACT: "2"},
     f"max-scale=1 is less than activation-scale=2: {ACT}", {}),
    ("valid algorithm on KPA", {ALGO: "linear", CLASS: KPA}, "", {}),
    ("empty algorithm", {ALGO: "", CLASS: KPA}, "", {}),
    ("random algorithm on KPA", {ALGO: "random-selection", CLASS: KPA},
     f"invalid value: random-selection: {ALGO}", {}),
    ("random algorithm on non KPA", {ALGO: "random-selection", CLASS: "of-keys"}, "", {}),
    ("panic window percentage bad", {PWP: "-1"}, f"expected 1 <= -1 <= 100: {PWP}", {}),
    ("panic window percentage bad2", {PWP: "202"}, f"expected 1 <= 202 <= 100: {PWP}", {}),
    ("panic window percentage bad3", {PWP: "fifty"}, f"invalid value: fifty: {PWP}", {}),
    ("panic window percentage good", {PTP: "210"}, "", {}),
    ("panic threshold percentage bad2", {PTP: "109"}, f"expected 110 <= 109 <= 1000: {PTP}", {}),
    ("panic threshold percentage bad2.5", {PTP: "10009"},
     f"expected 110 <= 10009 <= 1000: {PTP}", {}),
    ("panic threshold percentage bad3", {PTP: "fifty"}, f"invalid value: fifty: {PTP}", {}),
    ("target negative", {TARGET: "-11"}, f"target -11 should be at least 0.01: {TARGET}", {}),
    ("target 0", {TARGET: "0"}, f"target 0 should be at least 0.01: {TARGET}", {}),
    ("invalid target", {TARGET: "100}"}, f"invalid value: 100}}: {TARGET}", {}),
    ("target okay", {TARGET: "11"}, "", {}),
    ("TBC negative", {TBC: "-11"}, f"invalid value: -11: {TBC}", {}),
    ("TBC 0", {TBC: "0"}, "", {}),
    ("TBC 19880709", {TBC: "19870709"}, "", {}),
    ("TBC -1", {TBC: "-1"}, "", {}),
    ("TBC invalid", {TBC: "qarashen"}, f"invalid value: qarashen: {TBC}", {}),
    ("TU too small", {TU: "0"}, f"expected 1 <= 0 <= 100: {TU}", {}),
    ("TU too big", {TU: "101"}, f"expected 1 <= 101 <= 100: {TU}", {}),
    ("TU invalid", {TU: "dghyak"}, f"invalid value: dghyak: {TU}", {}),
    ("window invalid", {WINDOW: "jerry-was-a-racecar-driver"},
     f"invalid value: jerry-was-a-racecar-driver: {WINDOW}", {}),
    ("window too short", {WINDOW: "1s"}, f"expected 6s <= 1s <= 1h0m0s: {WINDOW}", {}),
    ("window too long", {WINDOW: "365h"}, f"expected 6s <= 365h <= 1h0m0s: {WINDOW}", {}),
    ("window too precise", {WINDOW: "1m9s82ms"},
     f"must be specified with at most second precision: {WINDOW}", {}),
    ("window valid for class KPA", {WINDOW: "7s", CLASS: KPA}, "", {}),
    ("window valid for another class", {WINDOW: "7s", CLASS: "test"}, "", {}),
    ("valid 0 last pod scaledown timeout", {RETENTION: "0"}, "", {}),
    ("valid positive last pod scaledown timeout", {RETENTION: "21m31s"}, "", {}),
    ("invalid positive last pod scaledown timeout", {RETENTION: "311m"},
     f"expected 0s <= 311m <= 1h0m0s: {RETENTION}", {}),
    ("invalid negative last pod scaledown timeout", {RETENTION: "-42s"},
     f"expected 0s <= -42s <= 1h0m0s: {RETENTION}", {}),
    ("invalid last pod scaledown timeout", {RETENTION: "twenty-two-minutes-and-five-seconds"},
     f"invalid value: twenty-two-minutes-and-five-seconds: {RETENTION}", {}),
    ("valid 0 scale down delay", {DELAY: "0"}, "", {}),
    ("valid positive scale down delay", {DELAY: "21m31s"}, "", {}),
    ("invalid positive scale down delay", {DELAY: "311m"},
     f"expected 0s <= 311m <= 1h0m0s: {DELAY}", {}),
    ("invalid positive scale down delay - too precise", {DELAY: "42.5s"},
     f"must be specified with at most second precision: {DELAY}", {}),
    ("invalid negative scale down delay", {DELAY: "-42s"},
     f"expected 0s <= -42s <= 1h0m0s: {DELAY}", {}),
    ("invalid scale down delay", {DELAY: "twenty-two-minutes-and-five-seconds"},
     f"invalid value: twenty-two-minutes-and-five-seconds: {DELAY}", {}),
    ("all together now fail", {PTP: "fifty", PWP: "-11", MIN: "-4", MAX: "never"},
     f"expected 0 <= -4 <= 2147483647: {MIN}\nexpected 1 <= -11 <= 100: {PWP}\n"
     f"invalid value: fifty: {PTP}\ninvalid value: never: {MAX}", {}),
    ("all together now, succeed", {PTP: "125", PWP: "75", MIN: "5", MAX: "8", WINDOW: "1984s"},
     "", {}),
    ("invalid metric for default class(KPA)", {METRIC: "cpu"}, f"invalid value: cpu: {METRIC}",
     {}),
    ("invalid metric for HPA class", {METRIC: "", CLASS: HPA}, f"invalid value: : {METRIC}", {}),
    ("valid class KPA with metric RPS", {METRIC: "rps"}, "", {}),
    ("valid class KPA with metric Concurrency", {METRIC: "concurrency"}, "", {}),
    ("valid class HPA with metric CPU", {CLASS: HPA, METRIC: "cpu"}, "", {}),
    ("other than HPA and KPA class", {CLASS: "other", METRIC: "rps"}, "", {}),
    ("initial scale is zero but cluster doesn't allow", {INITIAL: "0"},
     f"invalid value: 0: {INITIAL}=0 not allowed by cluster", {}),
    ("valid global class HPA with metric CPU", {METRIC: "cpu"}, "",
     {"pod_autoscaler_class": HPA}),
    ("initial scale is zero and cluster allows", {INITIAL: "0"}, "",
     {"allow_zero_initial_scale": True}),
    ("initial scale is greater than 0", {INITIAL: "2"}, "", {}),
    ("initial scale is less than 0", {INITIAL: "-1"},
     f"invalid value: -1: {INITIAL} must be greater than 0", {}),
    ("initial scale non-parseable", {INITIAL: "invalid"}, f"invalid value: invalid: {INITIAL}",
     {}),
]


@pytest.mark.parametrize("name,annotations,expected,changes", ANNOTATION_CASES,
                         ids=[c[0] for c in ANNOTATION_CASES])
def test_autoscaling_validate_annotations_matches_knative_tests(
        name: str, annotations: dict[str, str], expected: str, changes: dict[str, Any]) -> None:
    """serving/pkg/apis/autoscaling.ValidateAnnotations: TestValidateAnnotations' table."""
    config = autoscaling.AutoscalerConfig(**changes)
    assert error_text(autoscaling.validate_annotations(config, annotations)) == expected, name


HTTP_PROBE = {"periodSeconds": 1, "timeoutSeconds": 1, "successThreshold": 1,
              "failureThreshold": 3, "httpGet": {"path": "/"}}
CONFIG_MAP_VOLUME = {"the-name": {"name": "the-name", "configMap": {"name": "test-cm"}}}
OOB = "expected {} <= {} <= 2147483647: {}"
WITH_ADD_CAPABILITIES = DEFAULT.with_features(
    kubernetes__containerspec_addcapabilities=ENABLED)
WITH_INIT = DEFAULT.with_features(kubernetes__podspec_init_containers=ENABLED)

# (case name, container, volumes, expected Error() text, config)
CONTAINER_CASES: list[tuple[str, dict[str, Any], dict[str, Any], str, Config]] = [
    ("has a lifecycle", {"name": "foo", "image": "foo", "lifecycle": {}}, {},
     "must not set the field(s): lifecycle", WITH_INIT),
    ("has valid unnamed user port", {"image": "foo", "ports": [{"containerPort": 8181}]}, {},
     "", DEFAULT),
    ("has valid user port http1", {"image": "foo", "ports": [{"name": "http1"}]}, {}, "",
     DEFAULT),
    ("has valid user port h2c", {"image": "foo", "ports": [{"name": "h2c"}]}, {}, "", DEFAULT),
    ("has more than one ports with valid names",
     {"image": "foo", "ports": [{"name": "h2c"}, {"name": "http1"}]}, {},
     "more than one container port is set: ports\n"
     "Only a single port is allowed across all containers", DEFAULT),
    ("has an empty port set", {"image": "foo", "ports": [{}]}, {}, "", DEFAULT),
    ("has tcp protocol", {"image": "foo", "ports": [{"protocol": "TCP"}]}, {}, "", DEFAULT),
    ("has invalid protocol", {"image": "foo", "ports": [{"protocol": "tdp"}]}, {},
     "invalid value: tdp: ports.protocol", DEFAULT),
    ("has host port", {"image": "foo", "ports": [{"hostPort": 80}]}, {},
     "must not set the field(s): ports.hostPort", DEFAULT),
    ("has invalid port name", {"image": "foo", "ports": [{"name": "foobar"}]}, {},
     "Port name foobar is not allowed: ports\nName must be empty, or one of: 'h2c', 'http1'",
     DEFAULT),
    ("invalid with no handler", {"image": "foo", "readinessProbe": HTTP_PROBE,
                                 "livenessProbe": {}}, {},
     "expected exactly one, got neither: livenessProbe.exec, livenessProbe.grpc, "
     "livenessProbe.httpGet, livenessProbe.tcpSocket", DEFAULT),
    ("valid with startup probe", {"image": "foo", "startupProbe": {
        **HTTP_PROBE, "terminationGracePeriodSeconds": 10}}, {}, "", DEFAULT),
    ("invalid with multiple handlers", {"image": "foo", "readinessProbe": {
        **HTTP_PROBE, "exec": {}, "tcpSocket": {}}}, {},
     "expected exactly one, got both: readinessProbe.exec, readinessProbe.httpGet, "
     "readinessProbe.tcpSocket", DEFAULT),
    ("invalid readiness probe (has failureThreshold while using special probe)",
     {"image": "foo", "readinessProbe": {"periodSeconds": 0, "failureThreshold": 2,
                                         "successThreshold": 1, "httpGet": {"path": "/"}}}, {},
     "failureThreshold is disallowed when periodSeconds is zero: "
     "readinessProbe.failureThreshold", DEFAULT),
    ("invalid readiness probe (has timeoutSeconds while using special probe)",
     {"image": "foo", "readinessProbe": {"periodSeconds": 0, "timeoutSeconds": 2,
                                         "successThreshold": 1, "httpGet": {"path": "/"}}}, {},
     "timeoutSeconds is disallowed when periodSeconds is zero: readinessProbe.timeoutSeconds",
     DEFAULT),
    ("out of bounds probe values",
     {"image": "foo", "readinessProbe": {"periodSeconds": -1, "timeoutSeconds": 0,
                                         "successThreshold": 0, "failureThreshold": 0,
                                         "initialDelaySeconds": -1, "httpGet": {}}}, {},
     OOB.format(0, -1, "readinessProbe.initialDelaySeconds, readinessProbe.periodSeconds")
     + "\n" + OOB.format(1, 0, "readinessProbe.failureThreshold, "
                               "readinessProbe.successThreshold, readinessProbe.timeoutSeconds"),
     DEFAULT),
    ("reserved env var name for serving container",
     {"image": "foo", "env": [{"name": "PORT", "value": "Foo"}],
      "ports": [{"containerPort": 8888}]}, {},
     '"PORT" is a reserved environment variable: env[0].name', DEFAULT),
    ("invalid liveness tcp probe (has port)",
     {"image": "foo", "livenessProbe": {"tcpSocket": {"port": "imap"}}}, {},
     "invalid value: imap: livenessProbe.tcpSocket.port\nProbe port must match container port",
     DEFAULT),
    ("empty container", {}, {}, "missing field(s): ", WITH_INIT),
    ("valid container", {"image": "foo"}, {}, "", DEFAULT),
    ("invalid container image", {"image": "foo:bar:baz"}, {},
     'Failed to parse image reference: image\nimage: "foo:bar:baz", error: could not parse '
     "reference: foo:bar:baz", DEFAULT),
    ("has resources", {"image": "foo", "resources": {"requests": {"cpu": "250m"}}}, {}, "",
     DEFAULT),
    ("has container port value too large", {"image": "foo", "ports": [
        {"containerPort": 65536}]}, {}, "expected 0 <= 65536 <= 65535: ports.containerPort",
     DEFAULT),
    ("has host ip", {"image": "foo", "ports": [{"hostIP": "127.0.0.1"}]}, {},
     "must not set the field(s): ports.hostIP", DEFAULT),
    *[(f"port conflicts with {port}", {"image": "foo", "ports": [{"containerPort": port}]}, {},
       f"invalid value: {port} is a reserved port: ports.containerPort\n"
       f"{port} is a reserved port, please use a different value", DEFAULT)
      for port in (8008, 8013, 8012, 9090, 9091, 8022)],
    ("has unknown volumeMounts", {"image": "foo", "volumeMounts": [
        {"name": "the-name", "subPath": "oops"}]}, {},
     "missing field(s): volumeMounts[0].mountPath\n"
     "volume mount should be readOnly for this type of volume: volumeMounts[0].readOnly\n"
     "volumeMount has no matching volume: volumeMounts[0].name", DEFAULT),
    ("has known volumeMounts", {"image": "foo", "volumeMounts": [
        {"mountPath": "/mount/path", "name": "the-name", "readOnly": True}]},
     CONFIG_MAP_VOLUME, "", DEFAULT),
    ("has known volumeMounts, but at reserved path", {"image": "foo", "volumeMounts": [
        {"mountPath": "//dev//", "name": "the-name", "readOnly": True}]}, CONFIG_MAP_VOLUME,
     'mountPath "/dev" is a reserved path: volumeMounts[0].mountPath', DEFAULT),
    ("has known volumeMounts, bad mountPath", {"image": "foo", "volumeMounts": [
        {"mountPath": "not/absolute", "name": "the-name", "readOnly": True}]},
     CONFIG_MAP_VOLUME, "invalid value: not/absolute: volumeMounts[0].mountPath", DEFAULT),
    ("not allowed to add a security context capability", {"image": "foo", "securityContext": {
        "capabilities": {"add": ["NET_ADMIN"]}}}, {},
     "must not set the field(s): securityContext.capabilities.add", DEFAULT),
    ("allowed to add a security context capability when gate is enabled", {
        "image": "foo", "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}}, {}, "",
     WITH_ADD_CAPABILITIES),
    ("disallowed security context field", {"image": "foo", "securityContext": {
        "privileged": True}}, {}, "must not set the field(s): securityContext.privileged",
     DEFAULT),
    ("allowed setting security context field Privileged to false", {
        "image": "foo", "securityContext": {"privileged": False}}, {}, "", DEFAULT),
    ("too large uid", {"image": "foo", "securityContext": {"runAsUser": 2**31}}, {},
     "expected 0 <= 2147483648 <= 2147483647: securityContext.runAsUser", DEFAULT),
    ("negative uid", {"image": "foo", "securityContext": {"runAsUser": -10}}, {},
     "expected 0 <= -10 <= 2147483647: securityContext.runAsUser", DEFAULT),
    ("too large gid", {"image": "foo", "securityContext": {"runAsGroup": 2**31}}, {},
     "expected 0 <= 2147483648 <= 2147483647: securityContext.runAsGroup", DEFAULT),
    ("negative gid", {"image": "foo", "securityContext": {"runAsGroup": -10}}, {},
     "expected 0 <= -10 <= 2147483647: securityContext.runAsGroup", DEFAULT),
    ("envFrom - None of", {"image": "foo", "envFrom": [{}]}, {},
     "expected exactly one, got neither: envFrom.configMapRef, envFrom.secretRef", DEFAULT),
    ("envFrom - Multiple", {"image": "foo", "envFrom": [
        {"configMapRef": {"name": "ConfigMapName"}, "secretRef": {"name": "SecretName"}}]}, {},
     "expected exactly one, got both: envFrom.configMapRef, envFrom.secretRef", DEFAULT),
    ("envFrom - Secret", {"image": "foo", "envFrom": [{"secretRef": {"name": "SecretName"}}]},
     {}, "", DEFAULT),
    ("termination message policy", {"image": "foo",
                                    "terminationMessagePolicy": "Not a Policy"}, {},
     "invalid value: Not a Policy: terminationMessagePolicy", DEFAULT),
    ("empty env var name", {"image": "foo", "env": [{"value": "Foo"}]}, {},
     "missing field(s): env[0].name", DEFAULT),
    ("disallowed envvarsource", {"image": "foo", "env": [
        {"name": "Foo", "valueFrom": {"fieldRef": {"fieldPath": "/v1"}}}]}, {},
     "must not set the field(s): env[0].valueFrom.fieldRef", DEFAULT),
]


@pytest.mark.parametrize("name,container,volumes,expected,cfg", CONTAINER_CASES,
                         ids=[c[0] for c in CONTAINER_CASES])
def test_validate_user_container_matches_knative_tests(
        name: str, container: dict[str, Any], volumes: dict[str, Any], expected: str,
        cfg: Config) -> None:
    """serving/pkg/apis/serving.ValidateUserContainer (after validateContainersPorts):
    TestUserContainerValidation's table and getCommonContainerValidationTestCases."""
    port, errs = podspec.validate_containers_ports([container])
    errs += podspec.validate_user_container(cfg, container, volumes, port)
    assert error_text(errors_only(errs)) == expected, name


def _pruned(value: Any) -> Any:
    """JSON as Go marshals it with omitempty: empty objects and lists and nulls dropped."""
    if isinstance(value, dict):
        out = {k: _pruned(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


PROBE = {"tcpSocket": {}, "successThreshold": 1}  # revision_defaults_test.go defaultProbe
USER = "user-container"
# (case name, RevisionSpec in, config-defaults data, in a create, RevisionSpec wanted)
DEFAULTING_CASES: list[tuple[str, dict[str, Any], dict[str, str], bool, dict[str, Any]]] = [
    ("empty", {}, {}, False, {"timeoutSeconds": 300, "containerConcurrency": 0}),
    ("with context", {"containers": [{}]}, {"revision-timeout-seconds": "400"}, False,
     {"containerConcurrency": 0, "timeoutSeconds": 400,
      "containers": [{"name": USER, "readinessProbe": PROBE}]}),
    ("all revision timeouts set", {"containers": [{}]},
     {"revision-timeout-seconds": "400", "revision-idle-timeout-seconds": "100",
      "revision-response-start-timeout-seconds": "50"}, False,
     {"containerConcurrency": 0, "timeoutSeconds": 400, "responseStartTimeoutSeconds": 50,
      "idleTimeoutSeconds": 100, "containers": [{"name": USER, "readinessProbe": PROBE}]}),
    ("Some revision timeouts set with identical values", {"containers": [{}]},
     {"revision-timeout-seconds": "400", "revision-response-start-timeout-seconds": "400"},
     False, {"containerConcurrency": 0, "timeoutSeconds": 400,
             "containers": [{"name": USER, "readinessProbe": PROBE}]}),
    ("with context, in create, expect ESL set", {"containers": [{}]},
     {"revision-timeout-seconds": "323"}, True,
     {"containerConcurrency": 0, "timeoutSeconds": 323, "enableServiceLinks": False,
      "containers": [{"name": USER, "readinessProbe": PROBE}]}),
    ("with service spec `true`", {"enableServiceLinks": True, "containers": [{}]},
     {"enable-service-links": "true"}, False,
     {"containerConcurrency": 0, "timeoutSeconds": 300, "enableServiceLinks": True,
      "containers": [{"name": USER, "readinessProbe": PROBE}]}),
    ("with service links CM `true`", {"containers": [{}]}, {"enable-service-links": "true"},
     True, {"containerConcurrency": 0, "timeoutSeconds": 300, "enableServiceLinks": True,
            "containers": [{"name": USER, "readinessProbe": PROBE}]}),
    ("with service set", {"enableServiceLinks": False, "containers": [{}]},
     {"enable-service-links": "true"}, False,
     {"containerConcurrency": 0, "timeoutSeconds": 300, "enableServiceLinks": False,
      "containers": [{"name": USER, "readinessProbe": PROBE}]}),
    ("readonly volumes", {"enableServiceLinks": False, "containerConcurrency": 1,
                          "timeoutSeconds": 99,
                          "containers": [{"image": "foo", "volumeMounts": [{"name": "bar"}]}]},
     {}, False,
     {"enableServiceLinks": False, "containerConcurrency": 1, "timeoutSeconds": 99,
      "containers": [{"name": USER, "image": "foo", "readinessProbe": PROBE,
                      "volumeMounts": [{"name": "bar", "readOnly": True}]}]}),
    ("timeout sets to default when 0 is specified", {"containers": [{}], "timeoutSeconds": 0},
     {"revision-timeout-seconds": "456"}, False,
     {"containerConcurrency": 0, "timeoutSeconds": 456,
      "containers": [{"name": USER, "readinessProbe": PROBE}]}),
    ("no overwrite", {"containerConcurrency": 1, "timeoutSeconds": 99, "containers": [
        {"name": "foo", "readinessProbe": {"tcpSocket": {"host": "127.0.0.2"}}}]}, {}, False,
     {"containerConcurrency": 1, "timeoutSeconds": 99, "containers": [
         {"name": "foo", "readinessProbe": {"successThreshold": 1,
                                            "tcpSocket": {"host": "127.0.0.2"}}}]}),
    ("no overwrite exec", {"containers": [
        {"readinessProbe": {"exec": {"command": ["echo", "hi"]}}}]}, {}, False,
     {"timeoutSeconds": 300, "containerConcurrency": 0, "containers": [
         {"name": USER, "readinessProbe": {"successThreshold": 1,
                                           "exec": {"command": ["echo", "hi"]}}}]}),
    ("apply k8s defaults when period seconds has a non zero value",
     {"containers": [{"readinessProbe": {"periodSeconds": 10}}]}, {}, False,
     {"containerConcurrency": 0, "timeoutSeconds": 300, "containers": [
         {"name": USER, "readinessProbe": {"failureThreshold": 3, "tcpSocket": {},
                                           "periodSeconds": 10, "successThreshold": 1,
                                           "timeoutSeconds": 1}}]}),
    ("with resources from context", {"containers": [{}]},
     {"revision-cpu-request": "100m", "revision-memory-request": "200M",
      "revision-ephemeral-storage-request": "300m", "revision-cpu-limit": "400M",
      "revision-memory-limit": "500m", "revision-ephemeral-storage-limit": "600M"}, False,
     {"timeoutSeconds": 300, "containerConcurrency": 0, "containers": [
         {"name": USER, "readinessProbe": PROBE, "resources": {
             "requests": {"cpu": "100m", "memory": "200M", "ephemeral-storage": "300m"},
             "limits": {"cpu": "400M", "memory": "500m", "ephemeral-storage": "600M"}}}]}),
    ("multiple containers", {"containers": [
        {"name": "busybox", "ports": [{"containerPort": 8888}]}, {"name": "helloworld"}]},
     {}, False,
     {"timeoutSeconds": 300, "containerConcurrency": 0, "containers": [
         {"name": "busybox", "readinessProbe": PROBE, "ports": [{"containerPort": 8888}]},
         {"name": "helloworld"}]}),
    ("multiple containers with some names empty", {"containers": [
        {"name": ""}, {"name": "user-container-0", "ports": [{"containerPort": 8888}]},
        {"name": "user-container-3"}, {"name": ""}, {"name": "user-container-5"},
        {"name": ""}, {"name": ""}, {"name": "user-container-4"}]}, {}, False,
     {"timeoutSeconds": 300, "containerConcurrency": 0, "containers": [
         {"name": "user-container-1"},
         {"name": "user-container-0", "readinessProbe": PROBE,
          "ports": [{"containerPort": 8888}]},
         {"name": "user-container-3"}, {"name": "user-container-2"},
         {"name": "user-container-5"}, {"name": "user-container-6"},
         {"name": "user-container-7"}, {"name": "user-container-4"}]}),
]


@pytest.mark.parametrize("name,spec,data,in_create,wanted", DEFAULTING_CASES,
                         ids=[c[0] for c in DEFAULTING_CASES])
def test_revision_spec_set_defaults_matches_knative_tests(
        name: str, spec: dict[str, Any], data: dict[str, str], in_create: bool,
        wanted: dict[str, Any]) -> None:
    """serving/pkg/apis/serving/v1.(*RevisionSpec).SetDefaults, with
    config.NewDefaultsConfigFromMap: TestRevisionDefaulting's table (revision_defaults_test.go;
    Go's want as JSON, empty objects dropped as omitempty does)."""
    cfg = Config(defaults=new_defaults_config_from_map(data))
    serving.revision_spec_set_defaults(cfg, spec, {}, in_create=in_create)
    assert _pruned(spec) == _pruned(wanted), name


# (name, pod spec fields, its flag): k8s_validation_test.go TestPodSpecFeatureValidation.
FEATURES: list[tuple[str, dict[str, Any], str]] = [
    ("Affinity", {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{
            "key": "failure-domain.beta.kubernetes.io/zone", "operator": "In",
            "values": ["us-east1-b"]}]}]}}}}, "kubernetes.podspec-affinity"),
    ("TopologySpreadConstraints", {"topologySpreadConstraints": [{
        "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
        "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchExpressions": [
            {"key": "key", "operator": "In", "values": ["value"]}]}}]},
     "kubernetes.podspec-topologyspreadconstraints"),
    ("DNSPolicy", {"dnsPolicy": "Default"}, "kubernetes.podspec-dnspolicy"),
    ("DNSConfig", {"dnsConfig": {"nameservers": ["1.2.3.4"]}}, "kubernetes.podspec-dnsconfig"),
    ("HostAliases", {"hostAliases": [{"ip": "127.0.0.1", "hostnames": ["foo.remote",
                                                                       "bar.remote"]}]},
     "kubernetes.podspec-hostaliases"),
    ("NodeSelector", {"nodeSelector": {"kubernetes.io/arch": "amd64"}},
     "kubernetes.podspec-nodeselector"),
    ("Tolerations", {"tolerations": [{"key": "key", "operator": "Equal", "value": "value",
                                      "effect": "NoSchedule"}]}, "kubernetes.podspec-tolerations"),
    ("RuntimeClassName", {"runtimeClassName": "test"}, "kubernetes.podspec-runtimeclassname"),
    ("PodSpecSecurityContext", {"securityContext": {}}, "kubernetes.podspec-securitycontext"),
    ("PriorityClassName", {"priorityClassName": "foo"}, "kubernetes.podspec-priorityclassname"),
    ("SchedulerName", {"schedulerName": "foo"}, "kubernetes.podspec-schedulername"),
    ("ShareProcessNamespace", {"shareProcessNamespace": True},
     "kubernetes.podspec-shareprocessnamespace"),
]


@pytest.mark.parametrize("enabled", [False, True], ids=["flag disabled", "flag enabled"])
@pytest.mark.parametrize("present", [False, True], ids=["not present", "present"])
@pytest.mark.parametrize("name,fields,flag", FEATURES, ids=[f[0] for f in FEATURES])
def test_validate_pod_spec_feature_flags_match_knative_tests(
        name: str, fields: dict[str, Any], flag: str, present: bool, enabled: bool) -> None:
    """serving/pkg/apis/serving.ValidatePodSpec with PodSpecMask's flags:
    TestPodSpecFeatureValidation's table (each field refused only when present with its flag
    at its default, Disabled)."""
    cfg = Config(features={**DEFAULT.features, flag: ENABLED}) if enabled else DEFAULT
    spec = {**(fields if present else {}), "containers": [{"image": "busybox"}]}
    expected = f"must not set the field(s): {next(iter(fields))}" \
        if present and not enabled else ""
    assert error_text(errors_only(podspec.validate_pod_spec(cfg, spec))) == expected, name


DNS1035 = ("[a DNS-1035 label must consist of lower case alphanumeric characters or '-', start "
           "with an alphabetic character, and end with an alphanumeric character (e.g. "
           "'my-name',  or 'abc-123', regex used for validation is "
           "'[a-z]([-a-z0-9]*[a-z0-9])?')]")
# (case name, revision name, generateName, parent metadata, expected Error() text)
REVISION_NAME_CASES: list[tuple[str, str, str, dict[str, str], str]] = [
    ("invalid revision generateName - dots", "", "foo.bar", {},
     f"invalid value: not a DNS 1035 label prefix: {DNS1035}: metadata.generateName"),
    ("invalid revision name - dots", "foo.bar", "", {},
     f"invalid value: not a DNS 1035 label: {DNS1035}: metadata.name"),
    ("invalid name (not prefixed)", "foo", "", {"name": "bar"},
     'invalid value: "foo" must have prefix "bar-": metadata.name'),
    ("invalid name (with generateName)", "foo-bar-foo", "", {"generateName": "foo-bar-"},
     "must not set the field(s): metadata.name"),
    ("valid name", "valid-name", "", {"name": "valid"}, ""),
]


@pytest.mark.parametrize("name,rev,generate,parent,expected", REVISION_NAME_CASES,
                         ids=[c[0] for c in REVISION_NAME_CASES])
def test_validate_revision_name_matches_knative_tests(
        name: str, rev: str, generate: str, parent: dict[str, str], expected: str) -> None:
    """serving/pkg/apis/serving/v1.validateRevisionName: TestValidateRevisionName's table."""
    assert error_text(serving.validate_revision_name(rev, generate, parent)) == expected, name


def test_validate_timeout_seconds_matches_knative_tests() -> None:
    """serving/pkg/apis/serving/v1.validateTimeoutSeconds: TestValidateTimeoutSecond."""
    assert error_text(serving.validate_timeout_seconds(DEFAULT, 6000)) == \
        "expected 0 <= 6000 <= 600: timeoutSeconds"
    assert error_text(serving.validate_timeout_seconds(DEFAULT, 100)) == ""


def _ksvc(name: str, *, image: str = "busybox", traffic: Any = None,
          labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None,
          cc: int | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"image": image}]}
    if cc is not None:
        spec["containerConcurrency"] = cc
    meta: dict[str, Any] = {"name": name}
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "metadata": meta,
            "spec": {"template": {"spec": spec},
                     "traffic": traffic or [{"latestRevision": True, "percent": 100}]}}


# (case name, Service, expected Error() text): service_validation_test.go TestServiceValidation.
SERVICE_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("valid run latest", _ksvc("valid"), ""),
    ("valid visibility label",
     _ksvc("valid", labels={"networking.knative.dev/visibility": "cluster-local"}), ""),
    ("valid non knative label", _ksvc("valid", labels={"serving.name": "some-name"}), ""),
    ("valid release", _ksvc("valid", traffic=[
        {"tag": "current", "latestRevision": False, "revisionName": "valid-00001",
         "percent": 98},
        {"tag": "candidate", "latestRevision": False, "revisionName": "valid-00002",
         "percent": 2},
        {"tag": "latest", "latestRevision": True}]), ""),
    ("invalid configurationName", _ksvc("valid", traffic=[
        {"configurationName": "valid", "latestRevision": True, "percent": 100}]),
     "must not set the field(s): spec.traffic[0].configurationName"),
    ("invalid latestRevision", _ksvc("valid", traffic=[
        {"revisionName": "valid", "latestRevision": True, "percent": 100}]),
     'may not set revisionName "valid" when latestRevision is true: '
     "spec.traffic[0].latestRevision"),
    ("invalid container concurrency", _ksvc("valid", cc=-10),
     "expected 0 <= -10 <= 1000: spec.template.spec.containerConcurrency"),
    ("invalid rollout duration", _ksvc("rollout-duration-annotation", image="hellworld",
                                       annotations={"serving.knative.dev/rollout-duration":
                                                    "CLXXXIIIs"}),
     "invalid value: CLXXXIIIs: metadata.annotations.serving.knative.dev/rollout-duration"),
    ("invalid autoscaling.knative.dev annotation",
     _ksvc("autoscaling-annotation", image="helloworld:foo",
           annotations={"autoscaling.knative.dev/foo": "bar"}),
     'invalid key name "autoscaling.knative.dev/foo": metadata.annotations\n'
     'autoscaling annotations must be put under "spec.template.metadata.annotations" to work'),
    ("allow unknown uses of knative.dev/serving prefix for labels",
     _ksvc("byo-name", image="helloworld:foo", labels={"serving.knative.dev/testlabel": "value"}),
     ""),
    ("allow unknown uses of serving.knative.dev prefix for annotations",
     _ksvc("serving-annotation", image="helloworld:foo",
           annotations={"serving.knative.dev/foo": "bar"}), ""),
    ("invalid name", _ksvc("", image="helloworld:foo"),
     "name or generateName is required: metadata.name"),
]


@pytest.mark.parametrize("name,svc,expected", SERVICE_CASES, ids=[c[0] for c in SERVICE_CASES])
def test_service_validate_matches_knative_tests(name: str, svc: dict[str, Any],
                                                expected: str) -> None:
    """serving/pkg/apis/serving/v1.(*Service).Validate: TestServiceValidation's table."""
    assert error_text(errors_only(serving.service_validate(DEFAULT, svc))) == expected, name


def _flag(flag: str) -> Config:
    return Config(features={**DEFAULT.features, flag: ENABLED})


ONE_OF = "expected exactly one, got neither: configMap, emptyDir, projected, secret"
# (case name, volume, expected Error() text, config): k8s_validation_test.go
# TestVolumeValidation (its downward API cases apart: not mirrored, see the docs table).
VOLUME_CASES: list[tuple[str, dict[str, Any], str, Config]] = [
    ("just name", {"name": "foo"}, ONE_OF, DEFAULT),
    ("secret volume", {"name": "foo", "secret": {"secretName": "foo"}}, "", DEFAULT),
    ("configMap volume", {"name": "foo", "configMap": {"name": "foo"}}, "", DEFAULT),
    ("emptyDir volume", {"name": "foo", "emptyDir": {"medium": "Memory", "sizeLimit": "400"}},
     "", DEFAULT),
    ("invalid emptyDir volume", {"name": "foo", "emptyDir": {"medium": "Memory",
                                                             "sizeLimit": "-1"}},
     "invalid value: -1: emptyDir.sizeLimit", DEFAULT),
    ("valid hostPath volume with feature enabled",
     {"name": "foo", "hostPath": {"path": "/valid/path"}}, "",
     _flag("kubernetes.podspec-volumes-hostpath")),
    ("hostPath volume with feature disabled", {"name": "foo", "hostPath": {"path": "/valid/path"}},
     "HostPath volume support is disabled, but found HostPath volume foo: \n"
     "must not set the field(s): hostPath", DEFAULT),
    ("missing hostPath volume when required", {"name": "foo"},
     "expected exactly one, got neither: configMap, emptyDir, hostPath, projected, secret",
     _flag("kubernetes.podspec-volumes-hostpath")),
    ("valid CSI volume with feature enabled", {"name": "foo", "csi": {"driver": "foo"}}, "",
     _flag("kubernetes.podspec-volumes-csi")),
    ("CSI volume with feature disabled", {"name": "foo", "csi": {"driver": "foo"}},
     "CSI volume support is disabled, but found CSI volume foo: \n"
     "must not set the field(s): csi", DEFAULT),
    ("valid PVC with PVC feature enabled",
     {"name": "foo", "persistentVolumeClaim": {"claimName": "myclaim", "readOnly": True}}, "",
     _flag("kubernetes.podspec-persistent-volume-claim")),
    ("valid PVC with PVC feature disabled",
     {"name": "foo", "persistentVolumeClaim": {"claimName": "myclaim", "readOnly": False}},
     "Persistent volume claim support is disabled, but found persistent volume claim "
     "myclaim: \nPersistent volume write support is disabled, but found persistent volume "
     "claim myclaim that is not read-only: \nmust not set the field(s): persistentVolumeClaim",
     DEFAULT),
    ("multiple volume source", {"name": "foo", "configMap": {"name": "foo"}, "projected": {
        "sources": [{"secret": {"name": "foo", "items": [{"key": "foo", "path": "bar/baz"}]}}]}},
     "expected exactly one, got both: configMap, projected", DEFAULT),
    ("multiple projected volumes single source", {"name": "foo", "projected": {"sources": [{
        "secret": {"name": "foo"},
        "configMap": {"name": "bar", "items": [{"key": "foo", "path": "bar/baz"}]}}]}},
     "expected exactly one, got both: projected[0].configMap, projected[0].secret", DEFAULT),
    ("multiple project volume one-per-source", {"name": "foo", "projected": {"sources": [
        {"secret": {"name": "foo"}}, {"configMap": {"name": "bar"}}]}}, "", DEFAULT),
    ("multiple project volume one-per-source (no names)", {"name": "foo", "projected": {
        "sources": [{"secret": {}}, {"configMap": {}}]}},
     "missing field(s): projected[0].secret.name, projected[1].configMap.name", DEFAULT),
    ("no project volume source", {"name": "foo", "projected": {"sources": [{}]}},
     "expected exactly one, got neither: projected[0].configMap, projected[0].downwardAPI, "
     "projected[0].secret, projected[0].serviceAccountToken", DEFAULT),
    ("no name", {"secret": {"secretName": "foo"}}, "missing field(s): name", DEFAULT),
    ("bad name", {"name": "@@@", "secret": {"secretName": "foo"}}, "invalid value: @@@: name",
     DEFAULT),
    ("secret missing keyToPath values", {"name": "foo", "secret": {"secretName": "foo",
                                                                   "items": [{}]}},
     "missing field(s): items[0].key, items[0].path", DEFAULT),
    ("configMap missing keyToPath values", {"name": "foo", "configMap": {"name": "foo",
                                                                         "items": [{}]}},
     "missing field(s): items[0].key, items[0].path", DEFAULT),
    ("projection missing keyToPath values", {"name": "foo", "projected": {"sources": [
        {"secret": {"name": "foo", "items": [{}]}},
        {"configMap": {"name": "foo", "items": [{}]}}]}},
     "missing field(s): projected[0].secret.items[0].key, projected[0].secret.items[0].path, "
     "projected[1].configMap.items[0].key, projected[1].configMap.items[0].path", DEFAULT),
    ("serviceaccounttoken", {"name": "foo", "projected": {"sources": [{"serviceAccountToken": {
        "audience": "api", "expirationSeconds": 3600, "path": "token"}}]}}, "", DEFAULT),
    ("projection missing serviceaccounttoken values", {"name": "foo", "projected": {"sources": [
        {"serviceAccountToken": {"audience": "api", "expirationSeconds": 3600}}]}},
     "missing field(s): projected[0].serviceAccountToken.path", DEFAULT),
]


@pytest.mark.parametrize("name,volume,expected,cfg", VOLUME_CASES,
                         ids=[c[0] for c in VOLUME_CASES])
def test_validate_volume_matches_knative_tests(name: str, volume: dict[str, Any],
                                               expected: str, cfg: Config) -> None:
    """serving/pkg/apis/serving.validateVolume: TestVolumeValidation's table."""
    assert error_text(errors_only(podspec.validate_volume(cfg, volume))) == expected, name

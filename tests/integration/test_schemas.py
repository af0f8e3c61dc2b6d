"""Every rendered and generated object validates strictly: Kubernetes kinds and Knative CRDs."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest

from tests.support import k8s

SETS = list(k8s.OBJECT_SETS)


@pytest.mark.parametrize("source", SETS)
def test_kubernetes_kinds_validate_strictly(source: str) -> None:
    objects = [o for o in k8s.object_set(source) if not k8s.is_knative(o)]
    assert objects, f"{source}: no Kubernetes objects at all"
    errors = [e for o in objects for e in k8s.kubernetes_errors(o)]
    k8s.fail_on(errors, f"{source}: Kubernetes schema violations "
                        f"(kubernetes-validate {k8s.KUBERNETES_VERSION}, strict)")


@pytest.mark.parametrize("source", SETS)
def test_knative_kinds_validate_against_the_crds_strictly(source: str) -> None:
    objects = [o for o in k8s.object_set(source) if k8s.is_knative(o)]
    kinds = {o["kind"] for o in objects}
    assert {"Service", "Broker", "Trigger", "SinkBinding", "PingSource"} <= kinds, \
        f"{source}: Knative kinds missing; found {sorted(kinds)}"
    errors = [e for o in objects for e in k8s.crd_errors(o)]
    k8s.fail_on(errors, f"{source}: Knative CRD schema violations (strict)")


# ---------------------------------------------------------------- the validators catch errors


def ksvc(**container: Any) -> dict[str, Any]:
    """A minimal valid Knative Service."""
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": "probe", "labels": {"app": "probe"}},
        "spec": {"template": {"spec": {
            "containerConcurrency": 4,
            "containers": [{"image": "kind.local/probe:dev", **container}],
        }}},
    }


def deployment() -> dict[str, Any]:
    """A minimal valid Deployment."""
    labels = {"app": "probe"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "probe"},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels},
                         "spec": {"containers": [{"name": "probe", "image": "probe:1"}]}},
        },
    }


def test_a_valid_knative_service_passes() -> None:
    assert k8s.crd_errors(ksvc()) == []


@pytest.mark.parametrize(("where", "mutate", "expected"), [
    ("spec.template.spec", lambda o: o["spec"]["template"]["spec"].update(
        containerConcurency=4), "containerConcurency"),
    ("container", lambda o: o["spec"]["template"]["spec"]["containers"][0].update(
        imagePullPolicy="IfNotPresent", portz=[]), "portz"),
    ("top level", lambda o: o.update(specs={}), "specs"),
    ("metadata", lambda o: o["metadata"].update(annotation={"a": "b"}), "annotation"),
    ("label value type", lambda o: o["metadata"]["labels"].update(replicas=3), "3"),
    ("field type", lambda o: o["spec"]["template"]["spec"].update(
        timeoutSeconds="600"), "timeoutSeconds"),
], ids=["misspelled-containerConcurrency", "unknown-container-field", "unknown-top-level",
        "misspelled-metadata-annotations", "non-string-label", "string-for-integer"])
def test_strict_crd_validation_catches(where: str, mutate: Any, expected: str) -> None:
    obj = ksvc()
    mutate(obj)
    errors = k8s.crd_errors(obj)
    assert errors, f"a broken {where} passed strict CRD validation"
    assert any(expected in e for e in errors), errors


def test_crd_errors_name_the_path_in_the_document() -> None:
    obj = ksvc()
    obj["spec"]["template"]["spec"]["containerConcurency"] = 4
    (error,) = k8s.crd_errors(obj)
    assert error.startswith("Service/probe: .spec.template.spec: "), error


def test_preserve_unknown_fields_stay_open() -> None:
    # Trigger.spec.delivery preserves unknown fields: that is how `timeout` is accepted.
    trigger = {
        "apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
        "metadata": {"name": "probe"},
        "spec": {"broker": "default", "subscriber": {"uri": "http://x"},
                 "delivery": {"retry": 1, "timeout": "PT1S", "somethingNew": True}},
    }
    assert k8s.crd_errors(trigger) == []


@pytest.mark.parametrize("port", [8080, "http"], ids=["int", "string"])
def test_int_or_string_accepts_both(port: int | str) -> None:
    obj = ksvc(readinessProbe={"httpGet": {"path": "/health", "port": port}},
               resources={"limits": {"cpu": 1 if isinstance(port, int) else "500m"}})
    assert k8s.crd_errors(obj) == []


def test_strict_conversion_of_a_structural_schema() -> None:
    raw = {"type": "object", "properties": {
        "closed": {"type": "object", "properties": {"a": {"type": "string"}}},
        "open": {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                 "properties": {"a": {"type": "string"}}},
        "map": {"type": "object", "additionalProperties": {"type": "string"}},
        "port": {"type": "string", "x-kubernetes-int-or-string": True},
    }}
    validator = jsonschema.Draft202012Validator(k8s.strict(raw))
    assert validator.is_valid({"closed": {"a": "x"}, "open": {"b": 1}, "map": {"k": "v"},
                               "port": 8080})
    assert validator.is_valid({"port": "http"})
    assert not validator.is_valid({"closed": {"b": "x"}})
    assert not validator.is_valid({"unknown": 1})
    assert not validator.is_valid({"map": {"k": 1}})
    assert not validator.is_valid({"port": 1.5})
    assert not validator.is_valid({"open": {"a": 1}}), "open objects still check known fields"


def test_int_or_string_rejects_other_types() -> None:
    obj = ksvc(readinessProbe={"httpGet": {"path": "/health", "port": [8080]}})
    errors = k8s.crd_errors(obj)
    assert any(".readinessProbe.httpGet.port" in e for e in errors), errors


def test_unknown_knative_kind_is_an_error() -> None:
    obj = {"apiVersion": "serving.knative.dev/v1", "kind": "Servise",
           "metadata": {"name": "probe"}}
    assert any("unknown kind" in e for e in k8s.schema_errors(obj))


def test_kubernetes_validate_strict_catches_an_unknown_field() -> None:
    assert k8s.kubernetes_errors(deployment()) == []
    broken = copy.deepcopy(deployment())
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    (error,) = k8s.kubernetes_errors(broken)
    assert "imagePullPolicyy" in error and ".spec.template.spec.containers[0]" in error, error


def test_unknown_kubernetes_kind_is_an_error() -> None:
    obj = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor",
           "metadata": {"name": "probe"}, "spec": {}}
    assert any("unknown kind" in e for e in k8s.schema_errors(obj))


# ---------------------------------------------------------------- the optional ServiceMonitor

MONITOR_ON = ["metrics.serviceMonitor.enabled=true",
              "metrics.serviceMonitor.labels.release=kube-prometheus-stack"]


def test_service_monitor_only_when_enabled_and_then_valid() -> None:
    for source in SETS:
        assert not k8s.of_kind(k8s.object_set(source), "ServiceMonitor"), source
    objects = k8s.render_chart(sets=MONITOR_ON)
    (monitor,) = k8s.of_kind(objects, "ServiceMonitor", "monitoring.coreos.com")
    errors = [e for o in objects for e in k8s.schema_errors(o)]
    k8s.fail_on(errors, "schema violations with metrics.serviceMonitor.enabled")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    spec = monitor["spec"]
    # The functions' pods, through each revision's private Service, on the container port.
    selector = spec["selector"]
    assert selector["matchLabels"] == {"networking.internal.knative.dev/serviceType": "Private"}
    (expression,) = selector["matchExpressions"]
    assert expression["key"] == "serving.knative.dev/service"
    assert sorted(expression["values"]) == sorted(k8s.FUNCTIONS)
    assert set(expression["values"]) <= {s["metadata"]["name"] for s in k8s.ksvcs(objects)}
    (endpoint,) = spec["endpoints"]
    ports = {p["containerPort"] for s in k8s.ksvcs(objects)
             for c in s["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}
    assert ports == {endpoint["targetPort"]} and endpoint["path"] == "/metrics"


@pytest.mark.parametrize(("mutate", "expected"), [
    (lambda o: o["spec"].update(endpoint=[]), "endpoint"),
    (lambda o: o["spec"]["endpoints"][0].update(intervall="30s"), "intervall"),
    (lambda o: o["spec"]["endpoints"][0].update(interval="30 seconds"), "30 seconds"),
    (lambda o: o["spec"].pop("selector"), "selector"),
], ids=["misspelled-endpoints", "misspelled-interval", "bad-duration", "no-selector"])
def test_service_monitor_schema_catches(mutate: Any, expected: str) -> None:
    (monitor,) = k8s.of_kind(k8s.render_chart(sets=MONITOR_ON), "ServiceMonitor")
    assert k8s.schema_errors(monitor) == []
    mutate(monitor)
    errors = k8s.schema_errors(monitor)
    assert any(expected in e for e in errors), errors

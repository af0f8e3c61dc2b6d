"""Knative Eventing 1.22.2's webhook rules on every Eventing object the chart renders.

The rules are mirrored in tests/support/webhooks (one function per Go Validate/SetDefaults, each
naming its source); docs/knative-webhooks-eventing.md lists which Go function each test
covers. Every rendered Broker, Trigger, SinkBinding and PingSource must pass the defaulting
and the validating webhook of a default install; a broken copy of a rendered object per rule
proves each rule can fail; the mirrored parsers (ISO-8601 periods, cron) are checked against
their upstream tests' cases; and the values schema refuses what the webhooks would refuse.
"""

from __future__ import annotations

import base64
import copy
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support import k8s
from tests.support.webhooks import cron, duck, eventing, period

NAMESPACE = "thumbnails"  # scripts/deploy.sh's namespace; the API server sets it on each object
SINKS = (  # integrations.sinks: a URI-only subscriber and a ref with a relative path
    "integrations.sinks[0].name=crm",
    "integrations.sinks[0].uri=https://hooks.example.com/thumbnails",
    "integrations.sinks[1].name=audit",
    "integrations.sinks[1].ref.apiVersion=serving.knative.dev/v1",
    "integrations.sinks[1].ref.kind=Service",
    "integrations.sinks[1].ref.name=audit",
    "integrations.sinks[1].uri=/events",
    "integrations.sinks[1].types={image.uploaded}",
)
SETS = [*k8s.OBJECT_SETS, "chart-integration-sinks"]
KINDS = ("Broker", "Trigger", "SinkBinding", "PingSource")
Obj = dict[str, Any]


def objects_of(source: str) -> list[Obj]:
    """The objects of an object set of k8s.OBJECT_SETS, or the chart with SINKS."""
    if source == "chart-integration-sinks":
        return k8s.render_chart(None, sets=SINKS)
    return k8s.object_set(source)


def messages(errors: list[duck.FieldError]) -> list[str]:
    return [str(e) for e in errors]


# ---------------------------------------------------------------- every rendered object


@pytest.mark.parametrize("source", SETS)
def test_every_eventing_object_passes_the_eventing_webhooks(source: str) -> None:
    objects = objects_of(source)
    found = [o for o in objects if eventing.is_eventing(o)]
    kinds = {o["kind"] for o in found}
    assert set(KINDS) <= kinds, f"{source}: no {sorted(set(KINDS) - kinds)} rendered"
    errors = []
    for obj in found:
        try:
            rules = eventing.rules_for(obj)
        except KeyError:
            errors.append(f"{k8s.ident(obj)}: {obj['apiVersion']} {obj['kind']} has no mirrored "
                          "rules in tests/support/webhooks/eventing.py "
                          "(add them before rendering it)")
            continue
        assert rules is not None
        errors += [f"{k8s.ident(obj)}: {m}" for m in messages(eventing.admit(obj, NAMESPACE))]
    k8s.fail_on(errors, f"{source}: objects Eventing's webhooks refuse")


def test_the_sinks_render_has_the_sinks_triggers() -> None:
    triggers = k8s.by_name(k8s.of_kind(objects_of("chart-integration-sinks"), "Trigger"))
    assert triggers["crm"]["spec"]["subscriber"] == {
        "uri": "https://hooks.example.com/thumbnails"}
    assert triggers["audit"]["spec"]["subscriber"]["uri"] == "/events"


# ---------------------------------------------------------------- upgrades (helm upgrade)


UPGRADES = {
    "new-image-tag": ("image.tag=0.2.0",),
    "retries-changed": ("resize.delivery.retry=2", "broker.delivery.retry=1"),
    "schedule-changed": ("sweep.schedule=*/5 * * * *",),
}


@pytest.mark.parametrize("change", UPGRADES)
def test_upgrades_the_readme_describes_pass_the_immutability_rules(change: str) -> None:
    # Broker.CheckImmutableFields, Trigger.CheckImmutableFields on the stored objects.
    old = {k8s.ident(o): o for o in k8s.render_chart(None) if eventing.is_eventing(o)}
    new = {k8s.ident(o): o for o in k8s.render_chart(None, sets=UPGRADES[change])
           if eventing.is_eventing(o)}
    assert sorted(old) == sorted(new)
    errors = [f"{name}: {m}" for name in new
              for m in messages(eventing.admit_update(old[name], new[name], NAMESPACE))]
    k8s.fail_on(errors, f"{change}: updates Eventing's webhooks refuse")


# ---------------------------------------------------------------- broken copies, one per rule


def rendered(kind: str, name: str | None = None) -> Obj:
    """A copy of a rendered object of the default values (the first of its kind, or by name)."""
    for obj in k8s.render_chart(None):
        if obj["kind"] == kind and eventing.is_eventing(obj) and name in (
                None, obj["metadata"]["name"]):
            return obj
    raise AssertionError(f"no {kind} {name or ''} rendered")


def at(obj: Obj, path: str) -> Obj:
    """The mapping at a dotted path, created where missing."""
    for key in path.split(".") if path else []:
        obj = obj.setdefault(key, {})
    return obj


def put(path: str, value: Any, key: str | None = None) -> Callable[[Obj], None]:
    """A mutation setting a dotted path (or the key, which may hold dots, under the path)."""
    parent, _, last = path.rpartition(".") if key is None else (path, ".", key)
    return lambda obj: at(obj, parent).__setitem__(last, copy.deepcopy(value))


def drop(path: str) -> Callable[[Obj], None]:
    """A mutation removing a dotted path."""
    parent, _, key = path.rpartition(".")
    return lambda obj: at(obj, parent).pop(key)


def both(*mutations: Callable[[Obj], None]) -> Callable[[Obj], None]:
    def run(obj: Obj) -> None:
        for mutate in mutations:
            mutate(obj)
    return run


@dataclass(frozen=True)
class Broken:
    """A rendered object broken in one way, the Go function that refuses it, and its words."""

    go: str
    kind: str
    mutate: Callable[[Obj], None]
    want: str
    name: str | None = None
    ctx: Mapping[str, Any] = field(default_factory=dict)


ABSOLUTE = "https://elsewhere.example.com/hook"
BROKEN = {
    # Broker (pkg/apis/eventing/v1/broker_validation.go)
    "Broker.Validate-empty-class": Broken(
        "eventing/v1 Broker.Validate", "Broker",
        put("metadata.annotations", key=eventing.BROKER_CLASS_KEY, value=""),
        f"missing field(s): {eventing.BROKER_CLASS_KEY}"),
    "BrokerSpec.Validate-config-without-apiVersion": Broken(
        "eventing/v1 BrokerSpec.Validate > duck/v1 KReference.Validate", "Broker",
        put("spec.config", {"kind": "ConfigMap", "name": "kafka-broker-config"}),
        "missing field(s): spec.config.apiVersion"),
    "KReference.Validate-group-without-flag": Broken(
        "duck/v1 KReference.Validate (kreference-group off)", "Broker",
        put("spec.config", {"kind": "ConfigMap", "name": "c", "apiVersion": "v1", "group": "x"}),
        "must not set the field(s): spec.config.group"),
    "determineNamespaceAllowance-disallowed": Broken(
        "eventing/v1 determineNamespaceAllowance > KReference.Validate", "Broker",
        put("spec.config", {"kind": "ConfigMap", "name": "c", "apiVersion": "v1",
                            "namespace": "knative-eventing"}),
        "mismatched namespaces: spec.config.namespace",
        ctx={"br_defaults": {"clusterDefault": {
            **eventing.BR_DEFAULTS["clusterDefault"], "disallowDifferentNamespaceConfig": True}}}),
    "DeliverySpec.Validate-broker-backoffPolicy": Broken(
        "duck/v1 DeliverySpec.Validate (via BrokerSpec.Validate)", "Broker",
        put("spec.delivery.backoffPolicy", "fibonacci"),
        "invalid value: fibonacci: spec.delivery.backoffPolicy"),
    # Trigger (pkg/apis/eventing/v1/trigger_validation.go)
    "TriggerSpec.Validate-no-broker": Broken(
        "eventing/v1 TriggerSpec.Validate", "Trigger", drop("spec.broker"),
        "missing field(s): spec.broker"),
    "TriggerSpec.Validate-broker-and-brokerRef": Broken(
        "eventing/v1 TriggerSpec.Validate", "Trigger",
        put("spec.brokerRef", {"name": "default"}),
        "expected exactly one, got both: spec.broker, spec.brokerRef"),
    "TriggerSpec.Validate-brokerRef-namespace-without-flag": Broken(
        "eventing/v1 TriggerSpec.Validate (cross-namespace-event-links off)", "Trigger",
        both(drop("spec.broker"), put("spec.brokerRef", {"name": "default",
                                                         "namespace": "elsewhere"})),
        "must not set the field(s): spec.namespace"),
    "ValidateAttributesNames-filter": Broken(
        "eventing/v1 ValidateAttributeFilters > ValidateAttributesNames", "Trigger",
        put("spec.filter.attributes", {"Type": "x"}),
        'invalid key name "Type": spec.filter.attributes[Type]', name="resize-on-image-uploaded"),
    "ValidateAttributesNames-filters-exact": Broken(
        "eventing/v1 ValidateSubscriptionAPIFiltersList > ValidateSubscriptionAPIFilter",
        "Trigger", put("spec.filters", [{"any": [{"exact": {"event-type": "x"}}]}]),
        'invalid key name "event-type": spec.filters[0].any[0].exact[event-type]',
        name="event-display-on-thumbnail-events"),
    "ValidateOneOf-two-dialects": Broken(
        "eventing/v1 ValidateOneOf > hasMultipleDialects", "Trigger",
        put("spec.filters", [{"exact": {"type": "a"}, "prefix": {"type": "b"}}]),
        "multiple dialects found, filters can have only one dialect set",
        name="event-display-on-thumbnail-events"),
    "validateDependencyAnnotation-not-json": Broken(
        "eventing/v1 Trigger.validateDependencyAnnotation", "Trigger",
        put("metadata.annotations", key=eventing.DEPENDENCY_ANNOTATION, value="upload"),
        "The provided annotation was not a corev1.ObjectReference"),
    "validateDependencyAnnotation-no-kind": Broken(
        "eventing/v1 Trigger.validateDependencyAnnotation", "Trigger",
        put("metadata.annotations", key=eventing.DEPENDENCY_ANNOTATION,
            value='{"apiVersion": "sources.knative.dev/v1", "name": "x"}'),
        f"missing field(s): metadata.annotations[{eventing.DEPENDENCY_ANNOTATION}].kind"),
    "validateInjectionAnnotation-value": Broken(
        "eventing/v1 Trigger.validateInjectionAnnotation", "Trigger",
        put("metadata.annotations", key=eventing.INJECTION_ANNOTATION, value="yes"),
        'can only be "enabled" or "disabled", not "yes"'),
    "validateInjectionAnnotation-not-default-broker": Broken(
        "eventing/v1 Trigger.validateInjectionAnnotation", "Trigger",
        both(put("metadata.annotations", key=eventing.INJECTION_ANNOTATION, value="enabled"),
             put("spec.broker", "other")),
        'only used for default broker, but non-default broker specified here: "other"'),
    # Destinations (knative.dev/pkg apis/duck/v1/destination.go, knative_reference.go)
    "ValidateDestination-none": Broken(
        "duck/v1 Destination.Validate > ValidateDestination", "Trigger",
        put("spec.subscriber", {}),
        "expected at least one, got none: spec.subscriber.ref, spec.subscriber.uri"),
    "ValidateDestination-absolute-uri-with-ref": Broken(
        "duck/v1 ValidateDestination", "Trigger", put("spec.subscriber.uri", ABSOLUTE),
        "Absolute URI is not allowed when Ref or [apiVersion, kind, name] is present"),
    "ValidateDestination-relative-uri-alone": Broken(
        "duck/v1 ValidateDestination (via DeliverySpec.Validate)", "Trigger",
        drop("spec.delivery.deadLetterSink.ref"),
        "invalid value: Relative URI is not allowed when Ref and [apiVersion, kind, name] is "
        "absent: spec.delivery.deadLetterSink.uri"),
    "ValidateDestination-uri-without-host": Broken(
        "duck/v1 ValidateDestination", "Trigger", put("spec.subscriber", {"uri": "http:/x"}),
        "Relative URI is not allowed when Ref and [apiVersion, kind, name] is absent"),
    "apis.URL-undecodable-uri": Broken(
        "apis.URL.UnmarshalJSON (net/url.Parse)", "Trigger",
        put("spec.subscriber", {"uri": "http://resize:http/"}),
        'invalid port ":http" after host'),
    "KReference.Validate-subscriber-without-kind": Broken(
        "duck/v1 ValidateDestination > KReference.Validate", "Trigger",
        drop("spec.subscriber.ref.kind"), "missing field(s): spec.subscriber.ref.kind"),
    "validateCACerts-not-a-certificate": Broken(
        "duck/v1 validateCACerts", "Trigger",
        put("spec.delivery.deadLetterSink.CACerts",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
        "invalid value: CA Cert provided is not a certificate: "
        "spec.delivery.deadLetterSink.caCert"),
    "validateCACerts-garbage": Broken(
        "duck/v1 validateCACerts", "Trigger",
        put("spec.delivery.deadLetterSink.CACerts",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
        "invalid value: CA Cert provided is invalid"),
    # Delivery (pkg/apis/duck/v1/delivery_types.go)
    "DeliverySpec.Validate-negative-retry": Broken(
        "duck/v1 DeliverySpec.Validate", "Trigger", put("spec.delivery.retry", -1),
        "invalid value: -1: spec.delivery.retry"),
    "DeliverySpec.Validate-zero-timeout": Broken(
        "duck/v1 DeliverySpec.Validate", "Trigger", put("spec.delivery.timeout", "PT0S"),
        "invalid value: PT0S: spec.delivery.timeout"),
    "DeliverySpec.Validate-timeout-below-a-tenth": Broken(
        "duck/v1 DeliverySpec.Validate > period.Parse (one decimal kept)", "Trigger",
        put("spec.delivery.timeout", "PT0.05S"), "invalid value: PT0.05S: spec.delivery.timeout"),
    "DeliverySpec.Validate-timeout-flag-off": Broken(
        "duck/v1 DeliverySpec.Validate (delivery-timeout off)", "Trigger", lambda obj: None,
        "must not set the field(s): spec.delivery.timeout",
        ctx={"features": {"delivery-timeout": "disabled"}}),
    "DeliverySpec.Validate-backoffDelay-not-iso": Broken(
        "duck/v1 DeliverySpec.Validate", "Trigger", put("spec.delivery.backoffDelay", "500ms"),
        "invalid value: 500ms: spec.delivery.backoffDelay"),
    "DeliverySpec.Validate-format": Broken(
        "duck/v1 DeliverySpec.Validate", "Trigger", put("spec.delivery.format", "xml"),
        "invalid value: xml: spec.delivery.format"),
    "DeliverySpec.Validate-retryAfterMax-flag-off": Broken(
        "duck/v1 DeliverySpec.Validate (delivery-retryafter off)", "Trigger",
        put("spec.delivery.retryAfterMax", "PT10S"),
        "must not set the field(s): spec.delivery.retryAfterMax"),
    "DeliverySpec.Validate-retryAfterMax-negative": Broken(
        "duck/v1 DeliverySpec.Validate (delivery-retryafter on)", "Trigger",
        put("spec.delivery.retryAfterMax", "-PT10S"),
        "invalid value: -PT10S: spec.delivery.retryAfterMax",
        ctx={"features": {"delivery-retryafter": "enabled"}}),
    # SinkBinding (pkg/apis/sources/v1/sinkbinding_validation.go, knative.dev/pkg tracker)
    "tracker.Reference.Validate-neither-name-nor-selector": Broken(
        "sources/v1 SinkBindingSpec.Validate > tracker.Reference.Validate", "SinkBinding",
        drop("spec.subject.name"),
        "expected exactly one, got neither: spec.subject.selector, spec.subject.name"),
    "tracker.Reference.Validate-name-and-selector": Broken(
        "tracker.Reference.Validate", "SinkBinding",
        put("spec.subject.selector", {"matchLabels": {"app": "upload"}}),
        "expected exactly one, got both: spec.subject.selector, spec.subject.name"),
    "tracker.Reference.Validate-bad-selector": Broken(
        "tracker.Reference.Validate (LabelSelectorAsSelector)", "SinkBinding",
        both(drop("spec.subject.name"), put("spec.subject.selector", {"matchExpressions": [
            {"key": "app", "operator": "In", "values": []}]})),
        "values set can't be empty"),
    "tracker.Reference.Validate-name-not-a-label": Broken(
        "tracker.Reference.Validate (IsDNS1123Label)", "SinkBinding",
        put("spec.subject.name", "Upload"), "a lowercase RFC 1123 label must consist of"),
    "tracker.Reference.Validate-kind-not-an-identifier": Broken(
        "tracker.Reference.Validate (IsCIdentifier)", "SinkBinding",
        put("spec.subject.kind", "Knative-Service"), "a valid C identifier must start with"),
    "tracker.Reference.Validate-apiVersion": Broken(
        "tracker.Reference.Validate (IsQualifiedName)", "SinkBinding",
        put("spec.subject.apiVersion", "serving.knative.dev/v1/x"), "a valid label key"),
    "SinkBinding.Validate-subject-elsewhere": Broken(
        "sources/v1 SinkBinding.Validate", "SinkBinding",
        put("spec.subject.namespace", "elsewhere"),
        "invalid value: elsewhere: spec.subject.namespace"),
    "SourceSpec.Validate-no-sink": Broken(
        "duck/v1 SourceSpec.Validate > ValidateDestination", "SinkBinding", drop("spec.sink"),
        "expected at least one, got none: spec.sink.ref, spec.sink.uri"),
    "CloudEventOverrides.Validate-extension-name": Broken(
        "duck/v1 CloudEventOverrides.Validate > validateExtensionName", "SinkBinding",
        put("spec.ceOverrides", {"extensions": {"job-id": "x"}}),
        'invalid key name "job-id": spec.ceOverrides.extensions'),
    # PingSource (pkg/apis/sources/v1/ping_validation.go, robfig/cron)
    "validateDescriptor-every": Broken(
        "sources/v1 validateDescriptor", "PingSource", put("spec.schedule", "@every 1m"),
        "invalid value: unsupported descriptor @every: spec.schedule"),
    "PingSourceSpec.Validate-cron-range": Broken(
        "sources/v1 PingSourceSpec.Validate > cron Parser.Parse", "PingSource",
        put("spec.schedule", "*/5 24 * * *"),
        "invalid value: end of range (24) above maximum (23): 24: spec.schedule"),
    "PingSourceSpec.Validate-cron-fields": Broken(
        "sources/v1 PingSourceSpec.Validate > cron Parser.Parse", "PingSource",
        put("spec.schedule", "* * * *"), "expected 5 to 6 fields, found 4"),
    "PingSourceSpec.Validate-timezone": Broken(
        "sources/v1 PingSourceSpec.Validate > time.LoadLocation", "PingSource",
        put("spec.timezone", "Mars/Olympus_Mons"),
        "provided bad location Mars/Olympus_Mons: unknown time zone Mars/Olympus_Mons: "
        "spec.timezone"),
    "PingSourceSpec.Validate-data-and-dataBase64": Broken(
        "sources/v1 PingSourceSpec.Validate", "PingSource", put("spec.dataBase64", "e30="),
        "expected exactly one, got both: spec.data, spec.dataBase64"),
    "validateJSON-data-not-json": Broken(
        "sources/v1 validateJSON", "PingSource", put("spec.data", "sweep"),
        "invalid value: invalid character 's' looking for beginning of value: spec.data"),
    "validateJSON-data-not-an-object": Broken(
        "sources/v1 validateJSON", "PingSource", put("spec.data", '["sweep"]'),
        "cannot unmarshal list into a map"),
    "PingSourceSpec.Validate-dataBase64-not-base64": Broken(
        "sources/v1 PingSourceSpec.Validate", "PingSource",
        both(drop("spec.data"), put("spec.dataBase64", "$$$")),
        "invalid value: illegal base64 data at input byte 0: spec.dataBase64"),
    "PingSourceSpec.Validate-data-max-size": Broken(
        "sources/v1 PingSourceSpec.Validate (config-ping-defaults data-max-size)", "PingSource",
        lambda obj: None, "invalid value: the data length of 19 bytes exceeds limit set at 8.",
        ctx={"ping_data_max_size": 8}),
    "ValidateDestination-ping-sink-absolute-with-ref": Broken(
        "sources/v1 PingSourceSpec.Validate > ValidateDestination", "PingSource",
        put("spec.sink.uri", ABSOLUTE + "/sweep"),
        "Absolute URI is not allowed when Ref or [apiVersion, kind, name] is present: "
        "spec.sink[apiVersion, kind, name], spec.sink.ref, spec.sink.uri"),
}


@pytest.mark.parametrize("case", BROKEN)
def test_a_broken_copy_is_refused(case: str) -> None:
    broken = BROKEN[case]
    obj = rendered(broken.kind, broken.name)
    ctx = eventing.context(**broken.ctx)
    assert not eventing.admit(obj, NAMESPACE, eventing.context()), \
        f"the rendered {k8s.ident(obj)} is refused before it is broken"
    broken.mutate(obj)
    found = messages(eventing.admit(obj, NAMESPACE, ctx))
    assert any(broken.want in m for m in found), (
        f"{broken.go} should refuse {k8s.ident(obj)} with {broken.want!r}; the mirror says "
        f"{found}")


def test_a_real_ca_certificate_is_accepted() -> None:
    # validateCACerts: the refusals above are not a mirror that refuses every CACerts.
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "thumbnails-test-ca")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    obj = rendered("Trigger", "resize-on-image-uploaded")
    obj["spec"]["delivery"]["deadLetterSink"]["CACerts"] = cert.public_bytes(
        serialization.Encoding.PEM).decode()
    assert not messages(eventing.admit(obj, NAMESPACE))


def test_cesql_is_not_judged_silently() -> None:
    # ValidateCESQLExpression: no CESQL parser is mirrored, so a rendered cesql must fail.
    obj = rendered("Trigger", "event-display-on-thumbnail-events")
    obj["spec"]["filters"] = [{"cesql": "type LIKE '%thumbnail%'"}]
    with pytest.raises(NotImplementedError, match="CESQL"):
        eventing.admit(obj, NAMESPACE)


@pytest.mark.parametrize("kind,name,mutate,want", [
    ("Broker", None, put("metadata.annotations", "Kafka", key=eventing.BROKER_CLASS_KEY),
     "Immutable annotations changed (-old +new): annotations"),
    ("Broker", None, put("spec.config", {"apiVersion": "v1", "kind": "ConfigMap",
                                         "name": "other"}),
     "Immutable fields changed (-old +new): spec"),
    ("Trigger", "resize-on-image-uploaded", put("spec.broker", "other"),
     "Immutable fields changed (-old +new): spec, broker"),
], ids=["Broker.CheckImmutableFields-class", "Broker.CheckImmutableFields-config",
        "Trigger.CheckImmutableFields-broker"])
def test_an_update_of_an_immutable_field_is_refused(kind: str, name: str | None,
                                                    mutate: Callable[[Obj], None],
                                                    want: str) -> None:
    old = rendered(kind, name)
    new = copy.deepcopy(old)
    mutate(new)
    assert not eventing.admit_update(old, copy.deepcopy(old), NAMESPACE)
    found = messages(eventing.admit_update(old, new, NAMESPACE))
    assert any(m.startswith(want) for m in found), found


def test_a_broker_delivery_update_is_allowed() -> None:
    # Broker.CheckImmutableFields ignores spec.delivery.
    old = rendered("Broker")
    new = copy.deepcopy(old)
    new["spec"]["delivery"]["retry"] = 1
    assert not eventing.admit_update(old, new, NAMESPACE)


# ---------------------------------------------------------------- defaulting before validation


def test_broker_defaults_fill_class_config_and_delivery() -> None:
    # Broker.SetDefaults > BrokerSpec.SetDefaults, DefaultBrokerClassIfUnset, from
    # config-br-defaults as shipped (config/core/configmaps/default-broker.yaml).
    bare = {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
            "metadata": {"name": "default"}}
    assert "missing field(s): eventing.knative.dev/broker.class" in messages(
        eventing.broker_validate(copy.deepcopy(bare), eventing.context())), \
        "validation without defaulting should miss the class"
    stored = eventing.defaulted(bare, NAMESPACE)
    assert stored["metadata"]["annotations"] == {
        "eventing.knative.dev/broker.class": "MTChannelBasedBroker"}
    assert stored["spec"]["config"] == {"apiVersion": "v1", "kind": "ConfigMap",
                                        "name": "config-br-default-channel",
                                        "namespace": "knative-eventing"}
    assert stored["spec"]["delivery"] == {"retry": 10, "backoffPolicy": "exponential",
                                          "backoffDelay": "PT0.2S"}
    assert not eventing.admit(bare, NAMESPACE)


@pytest.mark.parametrize("source", SETS)
def test_rendered_brokers_keep_their_own_delivery_and_get_a_config(source: str) -> None:
    # BrokerSpec.SetDefaults only fills what is unset: the chart's delivery stays whole.
    for broker in k8s.of_kind(objects_of(source), "Broker", "eventing.knative.dev"):
        stored = eventing.defaulted(broker, NAMESPACE)
        assert stored["spec"]["delivery"] == broker["spec"]["delivery"]
        config = stored["spec"]["config"]
        assert config.get("namespace"), f"{k8s.ident(broker)}: config without a namespace"
        assert config == {**(broker["spec"].get("config") or config),
                          "namespace": config["namespace"]}


@pytest.mark.parametrize("source", SETS)
def test_trigger_defaults_label_the_broker_and_namespace_the_refs(source: str) -> None:
    # Trigger.SetDefaults > TriggerSpec.SetDefaults, setLabels, Destination.SetDefaults.
    objects = objects_of(source)
    broker = k8s.of_kind(objects, "Broker", "eventing.knative.dev")[0]["metadata"]["name"]
    for trigger in k8s.of_kind(objects, "Trigger", "eventing.knative.dev"):
        stored = eventing.defaulted(trigger, NAMESPACE)
        assert stored["metadata"]["labels"]["eventing.knative.dev/broker"] == broker
        assert "filter" in stored["spec"]
        for dest in (stored["spec"]["subscriber"], stored["spec"]["delivery"]["deadLetterSink"]):
            if "ref" in dest:
                assert dest["ref"]["namespace"] == NAMESPACE, k8s.ident(trigger)


def test_sinkbinding_defaults_give_the_subject_a_namespace() -> None:
    # SinkBinding.SetDefaults: without it tracker.Reference.Validate misses the namespace.
    binding = rendered("SinkBinding")
    binding["metadata"]["namespace"] = NAMESPACE
    assert "missing field(s): spec.subject.namespace" in messages(
        eventing.sink_binding_validate(copy.deepcopy(binding), eventing.context()))
    stored = eventing.defaulted(binding, NAMESPACE)
    assert stored["spec"]["subject"]["namespace"] == NAMESPACE
    assert stored["spec"]["sink"]["ref"]["namespace"] == NAMESPACE
    assert not eventing.admit(binding, NAMESPACE)


def test_pingsource_defaults_an_empty_schedule_to_every_minute() -> None:
    # PingSource.SetDefaults > PingSourceSpec.SetDefaults (ping_defaults.go defaultSchedule).
    source = rendered("PingSource")
    del source["spec"]["schedule"]
    assert eventing.defaulted(source, NAMESPACE)["spec"]["schedule"] == "* * * * *"
    assert not eventing.admit(source, NAMESPACE)


# ---------------------------------------------------------------- the ports against upstream


# rickb777/date v1.13.0 period/period_test.go TestParsePeriodWithNormalise (a selection);
# fields are years, months, days, hours, minutes, seconds, each x10.
PERIODS = {
    "P0": (0, 0, 0, 0, 0, 0), "PT0S": (0, 0, 0, 0, 0, 0), "P5W": (0, 0, 350, 0, 0, 0),
    "PT30M67.6S": (0, 0, 0, 0, 310, 76), "P3Y6M5W4DT12H40M5S": (30, 60, 390, 120, 400, 50),
    "-P3Y6M5W4DT12H40M5S": (-30, -60, -390, -120, -400, -50), "P2.15Y": (21, 0, 0, 0, 0, 0),
    "P1Y2.125M": (10, 21, 0, 0, 0, 0), "PT11595599S": (0, 0, 0, 32200, 590, 590),
    "PT283132799S": (0, 0, 32760, 230, 590, 590), "P39312M": (32760, 0, 0, 0, 0, 0),
}
# ... TestParseErrors
PERIOD_ERRORS = {
    "": "cannot parse a blank string as a period",
    "XY": "expected 'P' period mark at the start: XY",
    "PxY": "expected a number before the 'Y' marker: PxY",
    "PTxH": "expected a number before the 'H' marker: PTxH",
    "P1HT1M": "unexpected remaining components 1H: P1HT1M",
    "PT1Y": "unexpected remaining components 1Y: PT1Y",
    "P1S": "unexpected remaining components 1S: P1S",
}


@pytest.mark.parametrize("text", PERIODS)
def test_period_parse_matches_upstream(text: str) -> None:
    assert period.parse(text) == period.Period(*PERIODS[text])


@pytest.mark.parametrize("text", PERIOD_ERRORS)
def test_period_parse_errors_match_upstream(text: str) -> None:
    with pytest.raises(period.PeriodError) as caught:
        period.parse(text)
    assert str(caught.value) == PERIOD_ERRORS[text]


# robfig/cron v3.0.1 parser_test.go TestRange/TestParseScheduleErrors and Knative's
# ping_validation_test.go, as full PingSource specs (None: accepted).
CRONS = {
    "*/2 * * * *": None, "0/5 * * * * *": None, "10 0/5 * * * ?": None, "@hourly": None,
    "0 0 1 jan-mar mon-fri": None, "2": "expected 5 to 6 fields, found 1: [2]",
    "* * * *": "expected 5 to 6 fields, found 4", "* 5 j * * *": "failed to parse int from",
    "@unrecognized": "unrecognized descriptor", "5--5 * * * *": "too many hyphens",
    "*/-12 * * * *": "negative number", "*//2 * * * *": "too many slashes",
    "* * 0 * *": "below minimum", "60 * * * *": "above maximum",
    "5-3 * * * *": "beyond end of range", "*/0 * * * *": "should be a positive number",
    "CRON_TZ=Knative/Land */2 * * * *": "provided bad location Knative/Land: unknown time "
                                        "zone Knative/Land",
    "CRON_TZ=Europe/Paris */2 * * * *": None,
}


@pytest.mark.parametrize("spec", CRONS)
def test_cron_parse_matches_upstream(spec: str) -> None:
    want = CRONS[spec]
    if want is None:
        cron.parse(spec)
        return
    with pytest.raises(cron.CronError) as caught:
        cron.parse(spec)
    assert want in str(caught.value)


# pkg/apis/duck/v1/delivery_types_test.go TestDeliverySpecValidation (context.TODO(): every
# feature flag off unless the case turns one on), with the Go error text expected.
DELIVERIES: dict[str, tuple[Obj | None, Mapping[str, str], str]] = {
    "nil is valid": (None, {}, ""),
    "invalid time format": ({"backoffDelay": "invalid time"}, {},
                            "invalid value: invalid time: backoffDelay"),
    "invalid deadLetterSink": ({"deadLetterSink": {}}, {},
                               "expected at least one, got none: deadLetterSink.ref, "
                               "deadLetterSink.uri"),
    "valid timeout": ({"timeout": "PT2S"}, {"delivery-timeout": "enabled"}, ""),
    "invalid timeout": ({"timeout": "1985-04-12T23:20:50.52Z"}, {"delivery-timeout": "enabled"},
                        "invalid value: 1985-04-12T23:20:50.52Z: timeout"),
    "zero timeout": ({"timeout": "PT0S"}, {"delivery-timeout": "enabled"},
                     "invalid value: PT0S: timeout"),
    "disabled timeout": ({"timeout": "PT2S"}, {}, "must not set the field(s): timeout"),
    "valid backoffPolicy": ({"backoffPolicy": "exponential"}, {}, ""),
    "negative retry": ({"retry": -1}, {}, "invalid value: -1: retry"),
    "valid retry 0": ({"retry": 0}, {}, ""),
    "zero retryAfterMax": ({"retryAfterMax": "PT0S"}, {"delivery-retryafter": "enabled"}, ""),
    "empty retryAfterMax": ({"retryAfterMax": ""}, {"delivery-retryafter": "enabled"},
                            "invalid value: : retryAfterMax"),
    "disabled feature with retryAfterMax": ({"retryAfterMax": "PT2S"}, {},
                                            "must not set the field(s): retryAfterMax"),
    "valid format binary": ({"format": "binary"}, {}, ""),
    "invalid format": ({"format": "invalid"}, {}, "invalid value: invalid: format"),
}


@pytest.mark.parametrize("case", DELIVERIES)
def test_delivery_spec_validate_matches_upstream(case: str) -> None:
    spec, flags, want = DELIVERIES[case]
    ctx = eventing.Ctx(features=dict(flags))  # no config-features: every flag off
    assert "\n".join(messages(eventing.delivery_spec_validate(spec, ctx))) == want


# pkg/apis/sources/v1/ping_validation_test.go TestPingSourceValidation (a selection).
PING_SINK = {"ref": {"apiVersion": "v1", "kind": "Broker", "name": "default"}}
PINGS: dict[str, tuple[Obj, int, str]] = {
    "valid spec with timezone": ({"schedule": "*/2 * * * *", "timezone": "Europe/Paris"}, -1, ""),
    "invalid timezone": ({"schedule": "*/2 * * * *", "timezone": "Knative/Land"}, -1,
                         "invalid value: provided bad location Knative/Land: unknown time zone "
                         "Knative/Land: spec.timezone"),
    "invalid schedule": ({"schedule": "2"}, -1,
                         "invalid value: expected 5 to 6 fields, found 1: [2]: spec.schedule"),
    "data and dataBase64": ({"schedule": "*/2 * * * *", "contentType": "text/plain",
                             "data": "Hello world", "dataBase64": "SGVsbG8gV29ybGQu"}, -1,
                            "expected exactly one, got both: spec.data, spec.dataBase64"),
    "invalid base64": ({"schedule": "*/2 * * * *", "contentType": "text/plain",
                        "dataBase64": "$$$ invalid base64 string $$$"}, -1,
                       "invalid value: illegal base64 data at input byte 0: spec.dataBase64"),
    "data not JSON": ({"schedule": "*/2 * * * *", "contentType": "application/json",
                       "data": "Invalid JSON"}, -1,
                      "invalid value: invalid character 'I' looking for beginning of value: "
                      "spec.data"),
    "dataBase64 not JSON": ({"schedule": "*/2 * * * *", "contentType": "application/json",
                             "dataBase64": base64.b64encode(b"Invalid JSON").decode()}, -1,
                            "invalid value: invalid character 'I' looking for beginning of "
                            "value: spec.dataBase64"),
    "data too big": ({"schedule": "*/2 * * * *", "contentType": "text/plain",
                      "data": "x" * 5000}, 4096,
                     "invalid value: the data length of 5000 bytes exceeds limit set at 4096.: "
                     "spec.data"),
    "big data ok": ({"schedule": "*/2 * * * *", "contentType": "text/plain",
                     "data": "x" * 5000}, -1, ""),
    "@every": ({"schedule": "@every 2h"}, -1,
               "invalid value: unsupported descriptor @every: spec.schedule"),
}


@pytest.mark.parametrize("case", PINGS)
def test_ping_source_validate_matches_upstream(case: str) -> None:
    spec, limit, want = PINGS[case]
    source = {"apiVersion": "sources.knative.dev/v1", "kind": "PingSource",
              "metadata": {"name": "p", "namespace": NAMESPACE},
              "spec": {**spec, "sink": PING_SINK}}
    ctx = eventing.context(ping_data_max_size=limit)
    assert "\n".join(messages(eventing.ping_source_validate(source, ctx))) == want


# ---------------------------------------------------------------- the values schema agrees


def eventing_errors(objects: list[Obj]) -> list[str]:
    """Every refusal of the mirrored webhooks over the Eventing objects of a render."""
    return [f"{k8s.ident(o)}: {m}" for o in objects if eventing.is_eventing(o)
            for m in messages(eventing.admit(o, NAMESPACE))]


GOOD_VALUES = {  # values the webhooks accept: the schema must accept them too
    "timeout-a-tenth": ("resize.delivery.timeout=PT0.1S",),
    "backoffDelay-zero": ("broker.delivery.backoffDelay=PT0S",),
    "linear": ("integrations.delivery.backoffPolicy=linear",),
    "schedule-every-5-minutes": ("sweep.schedule=*/5 * * * *",),
    "schedule-with-seconds": ("sweep.schedule=30 * * * * *",),
    "schedule-names": ("sweep.schedule=0 9 * jan-jun mon-fri",),
    "schedule-descriptor": ("sweep.schedule=@hourly",),
    "sink-uri-absolute": ("integrations.sinks[0].name=a",
                          "integrations.sinks[0].uri=https://hooks.example.com/x"),
    "sink-ref-relative-uri": ("integrations.sinks[0].name=a",
                              "integrations.sinks[0].ref.apiVersion=serving.knative.dev/v1",
                              "integrations.sinks[0].ref.kind=Service",
                              "integrations.sinks[0].ref.name=a",
                              "integrations.sinks[0].uri=/x"),
    "dead-letter-uri-only": ("integrations.deadLetterSink.ref=null",
                             "integrations.deadLetterSink.uri=https://dlq.example.com/"),
}
BAD_VALUES = {  # values the webhooks refuse (shown on a render without the schema)
    "timeout-zero": ("resize.delivery.timeout=PT0S",),  # DeliverySpec.Validate IsZero
    "timeout-below-a-tenth": ("integrations.delivery.timeout=PT0.05S",),  # period.Parse
    "broker-timeout-zero-days": ("broker.delivery.timeout=P0D",),
    "retry-over-int32": ("resize.delivery.retry=3000000000",),  # retry is an *int32
    "schedule-every": ("sweep.schedule=@every 1m",),  # validateDescriptor
    "schedule-four-fields": ("sweep.schedule=* * * *",),  # cron normalizeFields
    "schedule-seven-fields": ("sweep.schedule=0 0 * * * * *",),
    "sink-uri-relative-alone": ("integrations.sinks[0].name=a",
                                "integrations.sinks[0].uri=/x"),  # ValidateDestination
    "sink-uri-absolute-with-ref": ("integrations.sinks[0].name=a",
                                   "integrations.sinks[0].ref.apiVersion=serving.knative.dev/v1",
                                   "integrations.sinks[0].ref.kind=Service",
                                   "integrations.sinks[0].ref.name=a",
                                   "integrations.sinks[0].uri=https://hooks.example.com/x"),
    "dead-letter-absolute-with-ref": ("integrations.deadLetterSink.uri=https://dlq.example.com/",),
    "dead-letter-ref-empty-kind": ("integrations.deadLetterSink.uri=null",  # KReference
                                   "integrations.deadLetterSink.ref.kind="),
    "broker-config-empty-apiVersion": ("broker.config.apiVersion=",
                                       "broker.config.kind=ConfigMap",
                                       "broker.config.name=c"),
}


@pytest.mark.parametrize("case", GOOD_VALUES)
def test_the_values_schema_accepts_what_the_webhooks_accept(case: str) -> None:
    objects = k8s.render_chart(None, sets=GOOD_VALUES[case])
    k8s.fail_on(eventing_errors(objects), f"{case}: refusals")


@pytest.mark.parametrize("case", BAD_VALUES)
def test_the_values_schema_refuses_what_the_webhooks_refuse(case: str) -> None:
    sets = [arg for s in BAD_VALUES[case] for arg in ("--set", s)]
    unchecked = k8s.run("helm", "template", k8s.RELEASE, k8s.CHART, "--skip-schema-validation",
                        *sets)
    assert eventing_errors(list(k8s.documents(unchecked.stdout))), \
        f"{case}: the webhooks accept this render; the case proves nothing"
    done = k8s.helm_template(sets=BAD_VALUES[case], check=False)
    assert done.returncode != 0, f"helm template accepts {BAD_VALUES[case]}, which " \
        f"Eventing's webhooks refuse"
    assert "schema" in done.stderr.lower(), done.stderr


# ---------------------------------------------------------------- the schema's patterns


@functools.cache
def schema_for(pointer: str) -> Callable[[Any], bool]:
    """A validator of one part of the chart's values schema (a JSON pointer into it)."""
    import json

    import jsonschema

    whole = json.loads((k8s.CHART / "values.schema.json").read_text())
    part = whole
    for key in pointer.strip("/").split("/"):
        part = part[key]
    validator = jsonschema.Draft7Validator({**part, "definitions": whole["definitions"]})
    return validator.is_valid


_NUMBER = st.from_regex(r"\A[0-9]{1,3}(\.[0-9]{1,3})?\Z")


@st.composite
def durations(draw: st.DrawFn) -> str:
    """ISO-8601 durations of the shape the values schema allows (days and time parts)."""
    parts = {mark: draw(st.none() | _NUMBER) for mark in "DHMS"}
    date = f"{parts['D']}D" if parts["D"] is not None else ""
    time = "".join(f"{parts[m]}{m}" for m in "HMS" if parts[m] is not None)
    return "P" + date + (f"T{time}" if time else "")


@settings(max_examples=200, deadline=None)
@given(durations())
def test_the_schemas_timeout_is_non_zero_exactly_when_knative_reads_it_so(text: str) -> None:
    # DeliverySpec.Validate refuses a timeout whose period.Parse IsZero.
    is_duration = schema_for("definitions/duration")(text)
    if not is_duration:
        return
    assert schema_for("definitions/nonZeroDuration")(text) == (not period.parse(text).is_zero())


_CRON_FIELDS = (("0", "59"), ("0", "59"), ("0", "23"), ("1", "31"), ("1", "12"), ("0", "6"))


@st.composite
def cron_specs(draw: st.DrawFn) -> str:
    """Schedules robfig/cron accepts: 5 or 6 fields of *, numbers, ranges, steps and lists."""
    seconds = draw(st.booleans())
    fields = []
    for low, high in _CRON_FIELDS[0 if seconds else 1:]:
        lo, hi = int(low), int(high)
        def one(a: int = lo, b: int = hi) -> st.SearchStrategy[str]:
            number = st.integers(a, b).map(str)
            ranged = st.tuples(st.integers(a, b), st.integers(a, b)).map(
                lambda t: f"{min(t)}-{max(t)}")
            star = st.sampled_from(["*", "?"])
            base = number | ranged | star
            return base | st.tuples(base, st.integers(1, 9)).map(lambda t: f"{t[0]}/{t[1]}")
        fields.append(",".join(draw(st.lists(one(), min_size=1, max_size=3))))
    return " ".join(fields)


@settings(max_examples=150, deadline=None)
@given(cron_specs())
def test_the_schema_accepts_every_schedule_knative_accepts(spec: str) -> None:
    cron.parse(spec)  # robfig/cron accepts it
    assert schema_for("properties/sweep/properties/schedule")(spec), spec

"""Knative Eventing 1.22 webhook rules (tag knative-v1.22.2), mirrored in Python.

One function per Go Validate/SetDefaults function that can touch what the chart renders
(Broker, Trigger, DeliverySpec, SinkBinding, PingSource), named after it in snake_case; each
docstring gives the Go file and function. Objects are plain dicts as decoded from YAML;
SetDefaults mirrors change them in place, Validate mirrors return a list of
duck.FieldError (str() is Go's message), empty when the webhook accepts.

`admit` runs what the API server and the two webhooks run for a create: the namespace from
the request, the defaulting webhook (SetDefaults), then the validating webhook (Validate).
The configuration is that of a default install (config-features, config-br-defaults and
config-ping-defaults as shipped in config/core/configmaps at the tag); `context()` changes it.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import yaml

from tests.support.webhooks import cron, duck, period
from tests.support.webhooks.duck import via
from tests.support.webhooks.pkg_apis import FieldError

Obj = dict[str, Any]

# config/core/configmaps/features.yaml at knative-v1.22.2 (absent names are disabled).
FEATURES: Mapping[str, str] = {
    "kreference-group": "disabled", "delivery-retryafter": "disabled",
    "delivery-timeout": "enabled", "kreference-mapping": "disabled",
    "transport-encryption": "disabled", "eventtype-auto-create": "disabled",
    "authentication-oidc": "disabled", "cross-namespace-event-links": "disabled",
    "new-apiserversource-filters": "disabled",
}
DELIVERY_TIMEOUT, DELIVERY_RETRY_AFTER = "delivery-timeout", "delivery-retryafter"
CROSS_NAMESPACE_EVENT_LINKS, KREFERENCE_GROUP = "cross-namespace-event-links", "kreference-group"
# config/core/configmaps/default-broker.yaml at knative-v1.22.2, key default-br-config.
BR_DEFAULTS: Mapping[str, Any] = yaml.safe_load("""
clusterDefault:
  brokerClass: MTChannelBasedBroker
  apiVersion: v1
  kind: ConfigMap
  name: config-br-default-channel
  namespace: knative-eventing
  delivery:
    retry: 10
    backoffPolicy: exponential
    backoffDelay: PT0.2S
""")
# config/core/configmaps/default-pingsource.yaml: data-max-size -1 (no limit).
PING_DATA_MAX_SIZE = -1

BROKER_CLASS_KEY = "eventing.knative.dev/broker.class"  # broker_validation.go, eventing/register.go
BROKER_LABEL = "eventing.knative.dev/broker"  # trigger_defaults.go brokerLabel
DEPENDENCY_ANNOTATION = "knative.dev/dependency"  # trigger_types.go
INJECTION_ANNOTATION = "eventing.knative.dev/injection"  # trigger_types.go
APPLICATION_JSON = "application/json"  # cloudevents sdk-go ApplicationJSON
_KREFERENCE_FIELDS = ("kind", "namespace", "name", "apiVersion", "group", "address")


@dataclass(frozen=True)
class Ctx(duck.Ctx):
    """The context the eventing webhooks build: config stores, and the update's baseline."""

    features: Mapping[str, str] = field(default_factory=lambda: dict(FEATURES))
    br_defaults: Mapping[str, Any] | None = field(default_factory=lambda: BR_DEFAULTS)
    ping_data_max_size: int = PING_DATA_MAX_SIZE
    baseline: Obj | None = None  # apis.GetBaseline on an update (the stored object)

    def enabled(self, flag: str) -> bool:
        """feature.Flags.IsEnabled (pkg/apis/feature/features.go)."""
        return str(self.features.get(flag, "")).lower() == "enabled"


def context(*, features: Mapping[str, str] | None = None, **changes: Any) -> Ctx:
    """A webhook context: the default install's configuration with `changes`, features
    merged over config-features (feature.NewFlagsConfigFromMap) and kreference-group
    turned into KReferenceGroupAllowed (feature/store.go fillContextWithFeatureSpecificFlags).
    """
    flags = {**FEATURES, **(features or {})}
    ctx = Ctx(features=flags, **changes)
    return replace(ctx, kreference_group_allowed=ctx.enabled(KREFERENCE_GROUP))


def _meta(obj: Obj) -> Obj:
    return obj.setdefault("metadata", {})


def _spec(obj: Obj) -> Obj:
    spec = obj.get("spec")
    if spec is None:
        spec = obj["spec"] = {}
    return spec


def within_parent(ctx: Ctx, obj: Obj) -> Ctx:
    """apis.WithinParent(ctx, obj.ObjectMeta): ParentMeta gives the object's namespace."""
    return replace(ctx, parent_namespace=str(_meta(obj).get("namespace") or ""))


# ---------------------------------------------------------------- config-br-defaults


def get_broker_config(defaults: Mapping[str, Any] | None, namespace: str,
                      broker_class: str | None) -> Obj | None:
    """Defaults.GetBrokerConfig (pkg/apis/config/defaults.go): the BrokerConfig (KReference
    fields and delivery) for a class, or None where Go returns an error."""
    if defaults is None:
        return None
    if broker_class:
        return _broker_config_by_class(defaults, namespace, broker_class)
    ns_config = (defaults.get("namespaceDefaults") or {}).get(namespace)
    if ns_config and ns_config.get("brokerClass"):
        return _broker_config_by_class(defaults, namespace, ns_config["brokerClass"])
    return _cluster_default_broker_config(defaults, "")


def _own_config(config: Mapping[str, Any]) -> Obj | None:
    """The inline *BrokerConfig of a DefaultConfig (nil when none of its fields is set)."""
    own = {k: config[k] for k in (*_KREFERENCE_FIELDS, "delivery") if k in config}
    return own or None


def _broker_config_by_class(defaults: Mapping[str, Any], namespace: str,
                            broker_class: str) -> Obj | None:
    """getBrokerConfigByClassName (defaults.go)."""
    ns_config = (defaults.get("namespaceDefaults") or {}).get(namespace)
    if ns_config:
        by_class = (ns_config.get("brokerClasses") or {}).get(broker_class)
        if ns_config.get("brokerClass") == broker_class:
            if by_class:
                return dict(by_class)
            own = _own_config(ns_config)
            return own if own is not None else _cluster_default_broker_config(
                defaults, broker_class)
        if by_class:
            return dict(by_class)
    return _cluster_default_broker_config(defaults, broker_class)


def _cluster_default_broker_config(defaults: Mapping[str, Any], broker_class: str) -> Obj | None:
    """getClusterDefaultBrokerConfig (defaults.go)."""
    cluster = defaults.get("clusterDefault")
    if not cluster or _own_config(cluster) is None:
        return None
    by_class = (cluster.get("brokerClasses") or {}).get(broker_class)
    if by_class:
        return dict(by_class)
    return _own_config(cluster)


def get_broker_class(defaults: Mapping[str, Any] | None, namespace: str) -> str | None:
    """Defaults.GetBrokerClass (defaults.go): the namespace's, else the cluster's default
    class; None where Go returns an error."""
    if defaults is None:
        return None
    ns_config = (defaults.get("namespaceDefaults") or {}).get(namespace)
    if ns_config and ns_config.get("brokerClass"):
        return str(ns_config["brokerClass"])
    cluster = defaults.get("clusterDefault") or {}
    return str(cluster["brokerClass"]) if cluster.get("brokerClass") else None


def determine_namespace_allowance(ctx: Ctx, defaults: Mapping[str, Any] | None) -> Ctx:
    """determineNamespaceAllowance (eventing/v1/broker_validation.go): a Broker's config may
    name another namespace unless disallowDifferentNamespaceConfig is true for the Broker's
    namespace or the cluster."""
    if defaults is None or (defaults.get("namespaceDefaults") is None
                            and defaults.get("clusterDefault") is None):
        return replace(ctx, allow_different_namespace=True)
    ns_config = (defaults.get("namespaceDefaults") or {}).get(ctx.parent_namespace) or {}
    cluster = defaults.get("clusterDefault") or {}
    if not ns_config.get("disallowDifferentNamespaceConfig") and \
            not cluster.get("disallowDifferentNamespaceConfig"):
        return replace(ctx, allow_different_namespace=True)
    return ctx


# ---------------------------------------------------------------- Broker


def broker_set_defaults(broker: Obj, ctx: Ctx) -> None:
    """Broker.SetDefaults (eventing/v1/broker_defaults.go): the spec from the class's
    configuration, then the class annotation when it is absent."""
    with_ns = within_parent(ctx, broker)
    annotations = _meta(broker).get("annotations") or {}
    broker_spec_set_defaults(_spec(broker), with_ns, str(annotations.get(BROKER_CLASS_KEY, "")))
    default_broker_class_if_unset(with_ns, _meta(broker))


def broker_spec_set_defaults(spec: Obj, ctx: Ctx, broker_class: str) -> None:
    """BrokerSpec.SetDefaults (broker_defaults.go): config and delivery from
    config-br-defaults when unset; the config's namespace; the delivery's defaults.

    As in Go, a set spec.config looks its defaults up by the config's KIND as class name.
    """
    config = get_broker_config(ctx.br_defaults, ctx.parent_namespace, broker_class)
    if spec.get("config") is not None:
        config = get_broker_config(ctx.br_defaults, ctx.parent_namespace,
                                   str(spec["config"].get("kind", "")))
    if config is not None:
        if spec.get("config") is None:
            ref = {k: copy.deepcopy(config[k]) for k in _KREFERENCE_FIELDS if k in config}
            if ref:
                spec["config"] = ref
        delivery = config.get("delivery")
        if spec.get("delivery") is None and delivery is not None:
            spec["delivery"] = {k: copy.deepcopy(delivery[k]) for k in (
                "deadLetterSink", "retry", "backoffPolicy", "backoffDelay") if k in delivery}
    if spec.get("config") is not None:
        duck.k_reference_set_defaults(spec["config"], ctx)
    delivery_spec_set_defaults(spec.get("delivery"), ctx)


def default_broker_class_if_unset(ctx: Ctx, meta: Obj) -> None:
    """eventing.DefaultBrokerClassIfUnset (pkg/apis/eventing/defaults.go): an ABSENT class
    annotation becomes the default class (an empty one stays, and Validate refuses it)."""
    annotations = meta.get("annotations") or {}
    if BROKER_CLASS_KEY not in annotations:
        broker_class = get_broker_class(ctx.br_defaults, str(meta.get("namespace") or ""))
        if broker_class is not None:
            meta["annotations"] = {**annotations, BROKER_CLASS_KEY: broker_class}


def broker_validate(broker: Obj, ctx: Ctx) -> list[FieldError]:
    """Broker.Validate (eventing/v1/broker_validation.go): a non-empty class annotation, the
    spec, and on an update the immutable fields."""
    ctx = within_parent(ctx, broker)
    with_ns = determine_namespace_allowance(ctx, ctx.br_defaults)
    errs: list[FieldError] = []
    if not (_meta(broker).get("annotations") or {}).get(BROKER_CLASS_KEY):
        errs.append(duck.missing(BROKER_CLASS_KEY))
    errs += via(broker_spec_validate(broker.get("spec") or {}, with_ns), "spec")
    if ctx.baseline is not None:
        errs += broker_check_immutable_fields(broker, ctx.baseline)
    return errs


def broker_spec_validate(spec: Obj, ctx: Ctx) -> list[FieldError]:
    """BrokerSpec.Validate (broker_validation.go): the config KReference and the delivery."""
    errs: list[FieldError] = []
    if spec.get("config") is not None:
        errs += via(duck.k_reference_validate(spec["config"], ctx), "config")
    if spec.get("delivery") is not None:
        errs += via(delivery_spec_validate(spec["delivery"], ctx), "delivery")
    return errs


def broker_check_immutable_fields(broker: Obj, original: Obj | None) -> list[FieldError]:
    """Broker.CheckImmutableFields (broker_validation.go): on an update only spec.delivery
    may change; the spec's other fields and the class annotation may not."""
    if original is None:
        return []
    old_spec = {k: v for k, v in (original.get("spec") or {}).items() if k != "delivery"}
    new_spec = {k: v for k, v in (broker.get("spec") or {}).items() if k != "delivery"}
    if old_spec != new_spec:
        return [FieldError("Immutable fields changed (-old +new)", ("spec",),
                           f"-{old_spec}\n+{new_spec}")]
    old_class = ((original.get("metadata") or {}).get("annotations") or {}).get(BROKER_CLASS_KEY)
    new_class = ((broker.get("metadata") or {}).get("annotations") or {}).get(BROKER_CLASS_KEY)
    if (old_class or "") != (new_class or ""):
        return [FieldError("Immutable annotations changed (-old +new)", ("annotations",),
                           f"-{old_class}\n+{new_class}")]
    return []


# ---------------------------------------------------------------- DeliverySpec


def delivery_spec_set_defaults(delivery: Obj | None, ctx: Ctx) -> None:
    """DeliverySpec.SetDefaults (duck/v1/delivery_defaults.go): the dead-letter sink's."""
    if delivery is not None and delivery.get("deadLetterSink") is not None:
        duck.destination_set_defaults(delivery["deadLetterSink"], ctx)


def _period_or_none(text: Any) -> period.Period | None:
    try:
        return period.parse(str(text))
    except period.PeriodError:
        return None


def delivery_spec_validate(delivery: Obj | None, ctx: Ctx) -> list[FieldError]:
    """DeliverySpec.Validate (duck/v1/delivery_types.go).

    deadLetterSink a valid Destination; retry >= 0; timeout only with the delivery-timeout
    flag (on by default) and a non-zero ISO-8601 period; backoffPolicy linear or
    exponential; backoffDelay a period; format json or binary; retryAfterMax only with the
    delivery-retryafter flag (off by default) and not negative. Periods are read by
    rickb777/date's period.Parse (see webhooks.period).
    """
    if delivery is None:
        return []
    errs = via(duck.destination_validate(delivery.get("deadLetterSink"), ctx), "deadLetterSink")
    retry = delivery.get("retry")
    if retry is not None:
        if isinstance(retry, bool) or not isinstance(retry, int) or not -2**31 <= retry < 2**31:
            errs.append(FieldError(f"could not decode: retry {retry!r} is not an int32",
                                   ("retry",)))
        elif retry < 0:
            errs.append(duck.invalid(retry, "retry"))
    if delivery.get("timeout") is not None:
        if ctx.enabled(DELIVERY_TIMEOUT):
            timeout = _period_or_none(delivery["timeout"])
            if timeout is None or timeout.is_zero():
                errs.append(duck.invalid(delivery["timeout"], "timeout"))
        else:
            errs.append(duck.disallowed("timeout"))
    policy = delivery.get("backoffPolicy")
    if policy is not None and policy not in ("exponential", "linear"):
        errs.append(duck.invalid(policy, "backoffPolicy"))
    if delivery.get("backoffDelay") is not None and _period_or_none(
            delivery["backoffDelay"]) is None:
        errs.append(duck.invalid(delivery["backoffDelay"], "backoffDelay"))
    fmt = delivery.get("format")
    if fmt is not None and fmt not in ("json", "binary"):
        errs.append(duck.invalid(fmt, "format"))
    if delivery.get("retryAfterMax") is not None:
        if ctx.enabled(DELIVERY_RETRY_AFTER):
            most = _period_or_none(delivery["retryAfterMax"])
            if most is None or most.is_negative():
                errs.append(duck.invalid(delivery["retryAfterMax"], "retryAfterMax"))
        else:
            errs.append(duck.disallowed("retryAfterMax"))
    return errs


# ---------------------------------------------------------------- Trigger


def trigger_set_defaults(trigger: Obj, ctx: Ctx) -> None:
    """Trigger.SetDefaults (eventing/v1/trigger_defaults.go): the spec's, then the broker
    label."""
    trigger_spec_set_defaults(_spec(trigger), within_parent(ctx, trigger))
    set_labels(ctx, trigger)


def trigger_spec_set_defaults(spec: Obj, ctx: Ctx) -> None:
    """TriggerSpec.SetDefaults (trigger_defaults.go): an empty filter, the subscriber's and
    the delivery's defaults."""
    if spec.get("filter") is None:
        spec["filter"] = {}
    if spec.get("subscriber") is None:
        spec["subscriber"] = {}
    duck.destination_set_defaults(spec["subscriber"], ctx)
    delivery_spec_set_defaults(spec.get("delivery"), ctx)


def set_labels(ctx: Ctx, trigger: Obj) -> None:
    """setLabels (trigger_defaults.go): label eventing.knative.dev/broker = the broker."""
    spec = trigger.get("spec") or {}
    meta = _meta(trigger)
    if ctx.enabled(CROSS_NAMESPACE_EVENT_LINKS) and spec.get("brokerRef") is not None:
        meta["labels"] = {**(meta.get("labels") or {}), BROKER_LABEL: spec["brokerRef"]["name"]}
    elif spec.get("broker"):
        meta["labels"] = {**(meta.get("labels") or {}), BROKER_LABEL: spec["broker"]}


def trigger_validate(trigger: Obj, ctx: Ctx) -> list[FieldError]:
    """Trigger.Validate (eventing/v1/trigger_validation.go): the spec, the dependency and
    injection annotations, and on an update the immutable broker.

    The cross-namespace check (crossnamespace.CheckNamespace) runs only with the
    cross-namespace-event-links flag and a brokerRef; it needs the API server (a
    SubjectAccessReview), so it is not mirrored and raises instead.
    """
    spec = trigger.get("spec") or {}
    errs = via(trigger_spec_validate(spec, ctx), "spec")
    errs = validate_annotation(trigger, errs, DEPENDENCY_ANNOTATION, validate_dependency_annotation)
    errs = validate_annotation(trigger, errs, INJECTION_ANNOTATION, validate_injection_annotation)
    if ctx.baseline is not None:
        errs += trigger_check_immutable_fields(trigger, ctx.baseline)
    if ctx.enabled(CROSS_NAMESPACE_EVENT_LINKS) and spec.get("brokerRef") is not None:
        raise NotImplementedError("crossnamespace.CheckNamespace is not mirrored")
    return errs


def trigger_spec_validate(spec: Obj, ctx: Ctx) -> list[FieldError]:
    """TriggerSpec.Validate (trigger_validation.go): exactly one of broker and brokerRef (a
    brokerRef namespace only with cross-namespace-event-links), filter, filters, subscriber
    and delivery."""
    errs: list[FieldError] = []
    broker_ref = spec.get("brokerRef")
    if broker_ref is None and not spec.get("broker"):
        errs.append(duck.missing("broker"))
    elif broker_ref is not None and spec.get("broker"):
        errs.append(duck.multiple_one_of("broker", "brokerRef"))
    if not ctx.enabled(CROSS_NAMESPACE_EVENT_LINKS) and broker_ref is not None \
            and broker_ref.get("namespace"):
        errs.append(FieldError(duck.disallowed("namespace").message, ("namespace",), (
            "only name, apiVersion and kind are supported fields when "
            "feature.CrossNamespaceEventLinks is disabled")))
    errs += via(validate_attribute_filters(spec.get("filter")), "filter")
    errs += via(validate_subscription_api_filters_list(spec.get("filters")), "filters")
    errs += via(duck.destination_validate(spec.get("subscriber") or {}, ctx), "subscriber")
    errs += via(delivery_spec_validate(spec.get("delivery"), ctx), "delivery")
    return errs


def trigger_check_immutable_fields(trigger: Obj, original: Obj | None) -> list[FieldError]:
    """Trigger.CheckImmutableFields (trigger_validation.go): spec.broker may not change."""
    if original is None:
        return []
    old = (original.get("spec") or {}).get("broker", "")
    new = (trigger.get("spec") or {}).get("broker", "")
    if old != new:
        return [FieldError("Immutable fields changed (-old +new)", ("spec", "broker"),
                           f"-{old}\n+{new}")]
    return []


def validate_annotation(trigger: Obj, errs: list[FieldError], annotation: str,
                        check: Callable[[Obj, str], list[FieldError]]) -> list[FieldError]:
    """Trigger.validateAnnotation (trigger_validation.go): run check on the annotation's
    value when it is present."""
    annotations = (trigger.get("metadata") or {}).get("annotations") or {}
    if annotation in annotations:
        errs = errs + via(check(trigger, str(annotations[annotation])),
                          f"metadata.annotations[{annotation}]")
    return errs


def validate_dependency_annotation(trigger: Obj, value: str) -> list[FieldError]:
    """Trigger.validateDependencyAnnotation (trigger_validation.go): a JSON
    corev1.ObjectReference with kind, name and apiVersion, in the Trigger's namespace."""
    try:
        ref = json.loads(value)
        if ref is None:
            ref = {}
        if not isinstance(ref, dict) or not all(
                isinstance(v, str) for k, v in ref.items() if k in (
                    "kind", "namespace", "name", "uid", "apiVersion", "resourceVersion",
                    "fieldPath")):
            raise ValueError("json: cannot unmarshal into Go value of type v1.ObjectReference")
    except ValueError as exc:
        return [FieldError(f"The provided annotation was not a corev1.ObjectReference: "
                           f"{json.dumps(value)}", ("",), str(exc))]
    errs: list[FieldError] = []
    namespace = str((trigger.get("metadata") or {}).get("namespace") or "")
    if ref.get("namespace") and ref["namespace"] != namespace:
        errs.append(FieldError(f"Namespace must be empty or equal to the trigger namespace "
                               f'"{namespace}"', ("namespace",)))
    errs += [duck.missing(key) for key in ("kind", "name", "apiVersion") if not ref.get(key)]
    return errs


def validate_injection_annotation(trigger: Obj, value: str) -> list[FieldError]:
    """Trigger.validateInjectionAnnotation (trigger_validation.go): "enabled" or "disabled",
    and only on a Trigger of the broker named default."""
    if value not in ("enabled", "disabled"):
        return [FieldError('The provided injection annotation value can only be "enabled" or '
                           f'"disabled", not {json.dumps(value)}', ("",))]
    broker = str((trigger.get("spec") or {}).get("broker") or "")
    if broker != "default":
        return [FieldError("The provided injection annotation is only used for default broker, "
                           f"but non-default broker specified here: {json.dumps(broker)}",
                           ("",))]
    return []


def validate_attribute_filters(trigger_filter: Obj | None) -> list[FieldError]:
    """ValidateAttributeFilters (trigger_validation.go): filter.attributes' names."""
    if trigger_filter is None:
        return []
    return via(validate_attributes_names(trigger_filter.get("attributes")), "attributes")


def validate_attributes_names(attrs: Mapping[str, Any] | None) -> list[FieldError]:
    """ValidateAttributesNames (trigger_validation.go): CloudEvents attribute names,
    ^[a-z][a-z0-9]*$ (the CloudEvents spec's naming rule)."""
    return [via([duck.invalid_key_name(str(attr), "", "Attribute name must start with a "
                                       "letter and can only contain lowercase alphanumeric")],
                f"[{attr}]")[0]
            for attr in attrs or {} if not re.fullmatch(r"[a-z][a-z0-9]*", str(attr))]


def validate_subscription_api_filters_list(filters: list[Obj] | None) -> list[FieldError]:
    """ValidateSubscriptionAPIFiltersList (trigger_validation.go): each filter expression.

    Go applies ViaIndex(i) to the errors gathered so far, so an error of filters[0] is
    reported under [1][0] when there is a filters[1]; mirrored, it only changes paths.
    """
    if filters is None:
        return []
    errs: list[FieldError] = []
    for i, f in enumerate(filters):
        errs = via([*errs, *validate_subscription_api_filter(f)], f"[{i}]")
    return errs


def validate_cesql_expression(expression: str | None) -> list[FieldError]:
    """ValidateCESQLExpression (trigger_validation.go): parse with the CESQL v1 grammar.

    The chart renders no cesql, and no CESQL parser is mirrored here: a non-empty
    expression raises so that a chart change that starts rendering one fails loudly.
    """
    if not expression:
        return []
    raise NotImplementedError(f"CESQL is not mirrored (cesql: {expression!r})")


def validate_subscription_api_filter(f: Obj | None) -> list[FieldError]:
    """ValidateSubscriptionAPIFilter (trigger_validation.go): one dialect, attribute names of
    exact/prefix/suffix, all/any/not recursively, cesql."""
    if f is None:
        return []
    return [*validate_one_of(f),
            *via(validate_attributes_names(f.get("exact")), "exact"),
            *via(validate_attributes_names(f.get("prefix")), "prefix"),
            *via(validate_attributes_names(f.get("suffix")), "suffix"),
            *via(validate_subscription_api_filters_list(f.get("all")), "all"),
            *via(validate_subscription_api_filters_list(f.get("any")), "any"),
            *via(validate_subscription_api_filter(f.get("not")), "not"),
            *via(validate_cesql_expression(f.get("cesql")), "cesql")]


def validate_one_of(f: Obj | None) -> list[FieldError]:
    """ValidateOneOf (trigger_validation.go): at most one dialect per filter expression."""
    if f is not None and has_multiple_dialects(f):
        return [FieldError("multiple dialects found, filters can have only one dialect set", ())]
    return []


def has_multiple_dialects(f: Obj) -> bool:
    """hasMultipleDialects (trigger_validation.go): more than one of exact, prefix, suffix,
    all, any, not (empty maps and lists do not count) and cesql."""
    found = [bool(f.get(k)) for k in ("exact", "prefix", "suffix", "all", "any")]
    found.append(f.get("not") is not None)
    found.append(bool(f.get("cesql")))
    return sum(found) > 1


# ---------------------------------------------------------------- SinkBinding


def sink_binding_set_defaults(binding: Obj, ctx: Ctx) -> None:
    """SinkBinding.SetDefaults (sources/v1/sinkbinding_defaults.go): the subject's namespace
    is the binding's; the sink's."""
    spec = _spec(binding)
    subject = spec.setdefault("subject", {})
    if not subject.get("namespace"):
        subject["namespace"] = str(_meta(binding).get("namespace") or "")
    duck.destination_set_defaults(spec.get("sink"), within_parent(ctx, binding))


def sink_binding_validate(binding: Obj, ctx: Ctx) -> list[FieldError]:
    """SinkBinding.Validate (sources/v1/sinkbinding_validation.go): the spec, and a subject
    in the binding's own namespace."""
    spec = binding.get("spec") or {}
    errs = via(sink_binding_spec_validate(spec, ctx), "spec")
    subject_ns = str((spec.get("subject") or {}).get("namespace") or "")
    if subject_ns and subject_ns != str(_meta(binding).get("namespace") or ""):
        errs.append(duck.invalid(subject_ns, "spec.subject.namespace"))
    return errs


def sink_binding_spec_validate(spec: Obj, ctx: Ctx) -> list[FieldError]:
    """SinkBindingSpec.Validate (sinkbinding_validation.go): the subject (tracker.Reference),
    the sink, and the SourceSpec (sink again, ceOverrides; Go merges the duplicates)."""
    return duck.dedupe([
        *via(duck.tracker_reference_validate(spec.get("subject") or {}), "subject"),
        *via(duck.destination_validate(spec.get("sink") or {}, ctx), "sink"),
        *duck.source_spec_validate(spec, ctx)])


# ---------------------------------------------------------------- PingSource


def ping_source_set_defaults(source: Obj, ctx: Ctx) -> None:
    """PingSource.SetDefaults (sources/v1/ping_defaults.go): the spec's."""
    ping_source_spec_set_defaults(_spec(source), ctx)


def ping_source_spec_set_defaults(spec: Obj, ctx: Ctx) -> None:
    """PingSourceSpec.SetDefaults (ping_defaults.go): schedule "* * * * *" when empty."""
    if not spec.get("schedule"):
        spec["schedule"] = "* * * * *"


def ping_source_validate(source: Obj, ctx: Ctx) -> list[FieldError]:
    """PingSource.Validate (sources/v1/ping_validation.go): the spec's."""
    return via(ping_source_spec_validate(source.get("spec") or {}, ctx), "spec")


def ping_source_spec_validate(spec: Obj, ctx: Ctx) -> list[FieldError]:
    """PingSourceSpec.Validate (ping_validation.go).

    schedule: no @every, and robfig/cron v3 accepts it (with an optional seconds field and
    descriptors) under CRON_TZ=<timezone> when a timezone is set; sink; at most one of data
    and dataBase64, each within config-ping-defaults' data-max-size, dataBase64 valid
    base64, and with contentType application/json a JSON object. Then the SourceSpec.
    """
    schedule = str(spec.get("schedule") or "")
    errs = validate_descriptor(schedule)
    if spec.get("timezone"):
        schedule = f"CRON_TZ={spec['timezone']} {schedule}"
    try:
        cron.parse(schedule)
    except cron.CronError as exc:
        where = "timezone" if str(exc).startswith("provided bad location") else "schedule"
        errs.append(duck.invalid(exc, where))
    errs += via(duck.destination_validate(spec.get("sink") or {}, ctx), "sink")
    data, data64 = str(spec.get("data") or ""), str(spec.get("dataBase64") or "")
    json_content = spec.get("contentType") == APPLICATION_JSON
    limit = ctx.ping_data_max_size
    if data and data64:
        errs.append(duck.multiple_one_of("data", "dataBase64"))
    elif data64:
        if limit > -1 and len(data64.encode()) > limit:
            errs.append(duck.invalid(f"the dataBase64 length of {len(data64.encode())} bytes "
                                     f"exceeds limit set at {limit}.", "dataBase64"))
        try:
            decoded = base64.b64decode(data64.replace("\r", "").replace("\n", ""),
                                       validate=True)
        except (binascii.Error, ValueError):
            errs.append(duck.invalid(f"illegal base64 data at input byte "
                                     f"{_base64_error_offset(data64)}", "dataBase64"))
        else:
            if json_content and (problem := validate_json(decoded.decode(errors="replace"))):
                errs.append(duck.invalid(problem, "dataBase64"))
    elif data:
        if limit > -1 and len(data.encode()) > limit:
            errs.append(duck.invalid(f"the data length of {len(data.encode())} bytes exceeds "
                                     f"limit set at {limit}.", "data"))
        if json_content and (problem := validate_json(data)):
            errs.append(duck.invalid(problem, "data"))
    return duck.dedupe([*errs, *duck.source_spec_validate(spec, ctx)])


def _base64_error_offset(text: str) -> int:
    """Where Go's base64.StdEncoding reports a CorruptInputError: the first byte outside the
    alphabet, else the end (bad length or padding)."""
    for i, c in enumerate(text):
        if not (c.isascii() and (c.isalnum() or c in "+/=\r\n")):
            return i
    return len(text.rstrip("=\r\n"))


def validate_json(text: str) -> str | None:
    """validateJSON (ping_validation.go): json.Unmarshal into map[string]interface{}, so a
    JSON object (or null); the problem (Go's words where a value cannot start), or None."""
    def no_constants(name: str) -> Any:
        raise json.JSONDecodeError("Expecting value", name, 0)

    try:
        value = json.loads(text, parse_constant=no_constants)
    except json.JSONDecodeError as exc:
        if exc.msg == "Expecting value" and exc.pos < len(exc.doc):
            return f"invalid character {exc.doc[exc.pos]!r} looking for beginning of value"
        return f"invalid JSON: {exc}"
    if value is not None and not isinstance(value, dict):
        return f"json: cannot unmarshal {type(value).__name__} into a map[string]interface {{}}"
    return None


def validate_descriptor(schedule: str) -> list[FieldError]:
    """validateDescriptor (ping_validation.go): "@every" is not supported."""
    if "@every" in schedule:
        return [duck.invalid("unsupported descriptor @every", "schedule")]
    return []


# ---------------------------------------------------------------- the webhooks


@dataclass(frozen=True)
class Rules:
    """The defaulting and validating functions the webhooks run for one kind."""

    set_defaults: Callable[[Obj, Ctx], None]
    validate: Callable[[Obj, Ctx], list[FieldError]]


# cmd/webhook/main.go ourTypes: the kinds the chart renders, by (apiVersion, kind).
KINDS: Mapping[tuple[str, str], Rules] = {
    ("eventing.knative.dev/v1", "Broker"): Rules(broker_set_defaults, broker_validate),
    ("eventing.knative.dev/v1", "Trigger"): Rules(trigger_set_defaults, trigger_validate),
    ("sources.knative.dev/v1", "SinkBinding"): Rules(sink_binding_set_defaults,
                                                     sink_binding_validate),
    ("sources.knative.dev/v1", "PingSource"): Rules(ping_source_set_defaults,
                                                    ping_source_validate),
}
EVENTING_GROUPS = ("eventing.knative.dev", "sources.knative.dev", "messaging.knative.dev",
                   "flows.knative.dev", "sinks.knative.dev")


def is_eventing(obj: Mapping[str, Any]) -> bool:
    """True for a kind of an Eventing API group (whether mirrored here or not)."""
    return str(obj.get("apiVersion", "")).split("/")[0] in EVENTING_GROUPS


def rules_for(obj: Mapping[str, Any]) -> Rules:
    """The mirrored rules of an object's kind; KeyError for an Eventing kind not mirrored."""
    return KINDS[(str(obj.get("apiVersion")), str(obj.get("kind")))]


def defaulted(obj: Obj, namespace: str, ctx: Ctx | None = None) -> Obj:
    """A copy of obj as stored after a create: the request's namespace when the manifest has
    none (the API server), then the defaulting webhook's SetDefaults."""
    out = copy.deepcopy(obj)
    meta = _meta(out)
    if not meta.get("namespace"):
        meta["namespace"] = namespace
    rules_for(out).set_defaults(out, ctx or context())
    return out


def admit(obj: Obj, namespace: str, ctx: Ctx | None = None) -> list[FieldError]:
    """What a create answers: SetDefaults, then Validate (empty list: accepted)."""
    ctx = ctx or context()
    return rules_for(obj).validate(defaulted(obj, namespace, ctx), ctx)


def admit_update(old: Obj, new: Obj, namespace: str, ctx: Ctx | None = None) -> list[FieldError]:
    """What an update (`helm upgrade`) answers: new defaulted and validated with the stored
    (defaulted) old object as apis.GetBaseline."""
    ctx = ctx or context()
    stored = defaulted(old, namespace, ctx)
    return rules_for(new).validate(defaulted(new, namespace, ctx), replace(ctx, baseline=stored))

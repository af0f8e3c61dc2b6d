"""Rules the schemas miss (Serving's webhook: test_webhook_serving.py); the manifests agree
with the code."""

from __future__ import annotations

import base64
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import k8s
from thumbnails.core import config, events
from thumbnails.local.broker import triggers as broker_triggers

SETS = list(k8s.OBJECT_SETS)
REQUIRED_ENV = ("REDIS_URL", "STORAGE_BACKEND", "S3_ENDPOINT", "S3_ACCESS_KEY", "S3_SECRET_KEY",
                "S3_BUCKET")
INJECTED_ENV = {"K_SINK"}  # the SinkBinding's, never ours
DELIVERY_FIELDS = ("retry", "backoffPolicy", "backoffDelay", "timeout", "deadLetterSink")
CUSTOM_PREFIX = "com.example.thumbs"
EXTERNAL_PLACEHOLDERS = {"REDIS_URL": "redis://redis.example:6379/0", "API_KEY_HASHES": "a" * 64}
Obj = dict[str, Any]


# ---------------------------------------------------------------- helpers


def pod_spec(ksvc: Obj) -> Obj:
    """spec.template.spec of a Knative Service."""
    return ((ksvc.get("spec") or {}).get("template") or {}).get("spec") or {}


def containers(ksvc: Obj) -> list[Obj]:
    """The containers of a Knative Service."""
    return pod_spec(ksvc).get("containers") or []


def template_annotations(ksvc: Obj) -> Obj:
    """spec.template.metadata.annotations of a Knative Service."""
    meta = ((ksvc.get("spec") or {}).get("template") or {}).get("metadata") or {}
    return meta.get("annotations") or {}


def functions(objects: Sequence[Obj]) -> dict[str, Obj]:
    """The functions' Knative Services by name (all three must be there)."""
    services = k8s.by_name(k8s.ksvcs(objects))
    missing = [name for name in k8s.FUNCTIONS if name not in services]
    assert not missing, f"no Knative Service for {missing}"
    return {name: services[name] for name in k8s.FUNCTIONS}


def metadata_blocks(value: Any, path: str = "") -> Iterator[tuple[str, Obj]]:
    """Every `metadata` mapping in an object, nested templates included, with its path."""
    if isinstance(value, dict):
        for key, sub in value.items():
            here = f"{path}.{key}"
            if key == "metadata" and isinstance(sub, dict):
                yield here, sub
            yield from metadata_blocks(sub, here)
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            yield from metadata_blocks(sub, f"{path}[{i}]")


def data_keys(obj: Obj) -> dict[str, str]:
    """The keys of a ConfigMap or Secret with their (decoded) values."""
    out: dict[str, str] = {}
    if obj["kind"] == "Secret":
        for key, value in (obj.get("data") or {}).items():
            out[key] = base64.b64decode(str(value)).decode(errors="replace")
        out.update({k: str(v) for k, v in (obj.get("stringData") or {}).items()})
    else:
        out.update({k: str(v) for k, v in (obj.get("data") or {}).items()})
        out.update({k: "<binary>" for k in obj.get("binaryData") or {}})
    return out


def container_env(container: Obj,
                  objects: Sequence[Obj]) -> tuple[dict[str, str | None], list[str]]:
    """Env name -> value (None when it comes from a Secret/ConfigMap not in the render or
    from a field), and problems with references that cannot work."""
    pools = {kind: k8s.by_name(k8s.of_kind(objects, kind, "")) for kind in ("ConfigMap", "Secret")}
    env: dict[str, str | None] = {}
    problems: list[str] = []
    for source in container.get("envFrom") or []:
        kind, ref = ("ConfigMap", source["configMapRef"]) if "configMapRef" in source \
            else ("Secret", source["secretRef"])
        found = pools[kind].get(ref["name"])
        if found is None:
            problems.append(f"envFrom {kind} {ref['name']!r} is not rendered: its keys are unknown")
            continue
        for key, value in data_keys(found).items():
            env[source.get("prefix", "") + key] = value
    for item in container.get("env") or []:
        value_from = item.get("valueFrom")
        if value_from is None:
            env[item["name"]] = str(item.get("value", ""))
            continue
        env[item["name"]] = None
        for kind, ref_key in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
            ref = value_from.get(ref_key)
            if ref and ref["name"] in pools[kind]:
                keys = data_keys(pools[kind][ref["name"]])
                if ref["key"] not in keys and not ref.get("optional"):
                    problems.append(f"env {item['name']}: {kind} {ref['name']!r} has no key "
                                    f"{ref['key']!r}")
                env[item["name"]] = keys.get(ref["key"])
    return env, problems


def chart_values(values_file: Path | None, sets: Sequence[str] = ()) -> Obj:
    """The chart's top-level values after a values file and simple `--set key=value`s."""
    values = yaml.safe_load((k8s.CHART / "values.yaml").read_text()) or {}
    if values_file is not None:
        values.update(yaml.safe_load(values_file.read_text()) or {})
    for assignment in sets:
        key, _, value = assignment.partition("=")
        values[key] = value
    return values


def prefix_of(source: str) -> str:
    """The event type prefix an object set was rendered with (knative/: the default)."""
    if source == "knative-dir":
        return events.TYPE_PREFIX
    return str(chart_values(k8s.SET_VALUES[source]).get("eventTypePrefix"))


def expected_types(prefix: str) -> set[str]:
    """The event types the code emits under a prefix (thumbnails.core.events is the one source)."""
    per_prefix = getattr(events, "EventTypes", None)
    if per_prefix is not None:
        return set(per_prefix(prefix).all)
    # Before per-prefix types existed: the default types, re-prefixed.
    return {prefix + t.removeprefix(events.TYPE_PREFIX) for t in events.EVENT_TYPES}


def filtered_types(trigger: Obj) -> Iterator[tuple[str, str]]:
    """(dialect, value) of every type a Trigger filters on: filter.attributes and `filters`."""
    spec = trigger.get("spec") or {}
    attributes = (spec.get("filter") or {}).get("attributes") or {}
    if "type" in attributes:
        yield "exact", str(attributes["type"])
    yield from _dialect_types(spec.get("filters") or [])


def _dialect_types(expressions: Any) -> Iterator[tuple[str, str]]:
    for expr in expressions if isinstance(expressions, list) else [expressions]:
        if not isinstance(expr, dict):
            continue
        for kind, arg in expr.items():
            if kind in ("all", "any", "not"):
                yield from _dialect_types(arg)
            elif kind in ("exact", "prefix", "suffix") and isinstance(arg, dict) and "type" in arg:
                yield kind, str(arg["type"])


def matches_some(dialect: str, value: str, types: set[str]) -> bool:
    """True when the filter can let through at least one of the types."""
    test = {"exact": str.__eq__, "prefix": str.startswith, "suffix": str.endswith}[dialect]
    return any(test(t, value) for t in types)


def is_ref(ref: Any, kind: str, api_version: str, names: set[str]) -> str | None:
    """None when ref names an object of that kind and API version in the render, else why not."""
    if not isinstance(ref, dict):
        return f"no ref (got {ref!r})"
    if ref.get("kind") != kind or ref.get("apiVersion") != api_version:
        return f"ref is {ref.get('apiVersion')} {ref.get('kind')}, not {api_version} {kind}"
    if ref.get("name") not in names:
        return f"ref names {kind} {ref.get('name')!r}, which is not rendered ({sorted(names)})"
    return None


# ---------------------------------------------------------------- webhook rules
# Knative Serving's webhook rules (ports, env, probes, scale bounds, timeouts, feature flags,
# ...) are mirrored from its source in tests/support/webhooks and checked in
# test_webhook_serving.py.
# What stays here: Eventing's, and rules of this project's own design.


@pytest.mark.parametrize("source", SETS)
def test_annotation_and_label_values_are_strings(source: str) -> None:
    errors = [f"{k8s.ident(obj)}: {path}.{field}.{key} = {value!r} is not a string"
              for obj in k8s.object_set(source)
              for path, meta in metadata_blocks(obj)
              for field in ("labels", "annotations")
              for key, value in (meta.get(field) or {}).items() if not isinstance(value, str)]
    k8s.fail_on(errors, f"{source}: non-string label/annotation values")


@pytest.mark.parametrize("source", SETS)
def test_every_trigger_has_a_complete_delivery(source: str) -> None:
    objects = k8s.object_set(source)
    found = k8s.of_kind(objects, "Trigger")
    assert found, f"{source}: no Trigger"
    errors = []
    for trigger in found:
        delivery = (trigger.get("spec") or {}).get("delivery") or {}
        missing = [f for f in DELIVERY_FIELDS if f not in delivery]
        if missing:
            errors.append(f"{k8s.ident(trigger)}: delivery lacks {missing} (a Trigger's "
                          "delivery replaces the Broker's whole)")
        sink = delivery.get("deadLetterSink") or {}
        if "deadLetterSink" in delivery and not (sink.get("ref") or sink.get("uri")):
            errors.append(f"{k8s.ident(trigger)}: deadLetterSink has neither ref nor uri")
    k8s.fail_on(errors, f"{source}: incomplete Trigger delivery")


@pytest.mark.parametrize("source", SETS)
def test_no_pinned_revision_names(source: str) -> None:
    errors = [f"{k8s.ident(svc)}: spec.template.metadata.name pins a revision name "
              "(SinkBinding then skips it)"
              for svc in k8s.ksvcs(k8s.object_set(source))
              if "name" in (((svc.get("spec") or {}).get("template") or {}).get("metadata") or {})]
    k8s.fail_on(errors, f"{source}: pinned revision names")


def hardening_gaps(pod_level: Obj, container: Obj) -> list[str]:
    """What a container's effective securityContext lacks (the restricted profile's core)."""
    sc = {**pod_level, **(container.get("securityContext") or {})}
    checks = {
        "runAsNonRoot: true": sc.get("runAsNonRoot") is True,
        "allowPrivilegeEscalation: false": sc.get("allowPrivilegeEscalation") is False,
        "capabilities.drop [ALL]": "ALL" in ((sc.get("capabilities") or {}).get("drop") or []),
        "seccompProfile.type RuntimeDefault":
            (sc.get("seccompProfile") or {}).get("type") == "RuntimeDefault",
        "readOnlyRootFilesystem: true": sc.get("readOnlyRootFilesystem") is True,
    }
    return [name for name, ok in checks.items() if not ok]


def workload_pod_specs(objects: Sequence[Obj]) -> Iterator[tuple[Obj, Obj]]:
    """(object, pod spec) of every object that runs containers."""
    for obj in objects:
        spec = obj.get("spec") or {}
        if k8s.is_knative(obj):
            if obj["kind"] == "Service":
                yield obj, pod_spec(obj)
        elif obj["kind"] == "Pod":
            yield obj, spec
        elif obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
            yield obj, (spec.get("template") or {}).get("spec") or {}
        elif obj["kind"] == "CronJob":
            job = (spec.get("jobTemplate") or {}).get("spec") or {}
            yield obj, (job.get("template") or {}).get("spec") or {}


@pytest.mark.parametrize("source", SETS)
def test_containers_are_hardened(source: str) -> None:
    # Knative Services: on each container (pod-level needs a feature flag); other workloads
    # may set runAsNonRoot and seccompProfile once for the pod.
    errors = []
    for obj, spec in workload_pod_specs(k8s.object_set(source)):
        pod_level = {} if k8s.is_knative(obj) else spec.get("securityContext") or {}
        for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
            errors += [f"{k8s.ident(obj)} container {c.get('name', c.get('image'))}: "
                       f"securityContext lacks {gap}" for gap in hardening_gaps(pod_level, c)]
    k8s.fail_on(errors, f"{source}: container hardening")


@pytest.mark.parametrize("source", SETS)
def test_functions_run_their_own_entry_point(source: str) -> None:
    errors = []
    for name, svc in functions(k8s.object_set(source)).items():
        (container,) = containers(svc)
        args = [str(a) for a in container.get("args") or []]
        if args[:2] != ["serve", name]:
            errors.append(f"{k8s.ident(svc)}: args {args} do not start with ['serve', {name!r}]")
        if name == "resize":
            opts = dict(zip(args[2::2], args[3::2], strict=False))
            try:
                slots = int(opts["--workers"]) * int(opts["--threads"])
            except (KeyError, ValueError):
                errors.append(f"{k8s.ident(svc)}: args {args} lack --workers N --threads N")
                continue
            if pod_spec(svc).get("containerConcurrency") != slots:
                errors.append(f"{k8s.ident(svc)}: containerConcurrency "
                              f"{pod_spec(svc).get('containerConcurrency')} != workers x threads "
                              f"= {slots}")
    k8s.fail_on(errors, f"{source}: function entry points")


# ---------------------------------------------------------------- agreement with the code

TYPE_CASES = {
    **{source: (values_file, ()) for source, values_file in k8s.SET_VALUES.items()},
    "chart-custom-prefix": (None, (f"eventTypePrefix={CUSTOM_PREFIX}",)),
}


@pytest.mark.parametrize("case", [*TYPE_CASES, "knative-dir"])
def test_every_filtered_type_is_one_the_code_emits(case: str) -> None:
    if case == "knative-dir":
        objects, prefix = k8s.knative_objects(), events.TYPE_PREFIX
    else:
        values_file, sets = TYPE_CASES[case]
        objects = k8s.render_chart(values_file, sets=sets)
        prefix = str(chart_values(values_file, sets).get("eventTypePrefix"))
    if case == "chart-custom-prefix":
        assert prefix == CUSTOM_PREFIX
    types = expected_types(prefix)
    errors = []
    for trigger in k8s.of_kind(objects, "Trigger"):
        filters = list(filtered_types(trigger))
        if not filters:
            errors.append(f"{k8s.ident(trigger)}: filters on no event type")
        errors += [f"{k8s.ident(trigger)}: filters {dialect} type {value!r}, which the code "
                   f"does not emit under prefix {prefix!r} ({sorted(types)})"
                   for dialect, value in filters if not matches_some(dialect, value, types)]
    if case != "knative-dir":
        for svc in functions(objects).values():
            env, _ = container_env(containers(svc)[0], objects)
            if env.get("EVENT_TYPE_PREFIX") != prefix:
                errors.append(f"{k8s.ident(svc)}: EVENT_TYPE_PREFIX is "
                              f"{env.get('EVENT_TYPE_PREFIX')!r}, not the chart's {prefix!r}")
    k8s.fail_on(errors, f"{case}: Trigger types the code does not emit")


@pytest.mark.parametrize("source", SETS)
def test_functions_env_names_are_ones_the_code_reads(source: str) -> None:
    objects = k8s.object_set(source)
    known = set(config.ENVIRONMENT) - INJECTED_ENV
    errors = []
    for svc in functions(objects).values():
        for c in containers(svc):
            env, problems = container_env(c, objects)
            errors += [f"{k8s.ident(svc)}: {p}" for p in problems]
            errors += [f"{k8s.ident(svc)}: sets {name}, which thumbnails.core.config.ENVIRONMENT "
                       "does not read" + (" (K_SINK is the SinkBinding's)"
                                          if name in INJECTED_ENV else "")
                       for name in sorted(env) if name not in known]
    k8s.fail_on(errors, f"{source}: env names the functions do not read")


@pytest.mark.parametrize("source", SETS)
def test_functions_get_every_required_setting(source: str) -> None:
    objects = k8s.object_set(source)
    errors = []
    for svc in functions(objects).values():
        env, _ = container_env(containers(svc)[0], objects)
        errors += [f"{k8s.ident(svc)}: {name} is not set"
                   for name in REQUIRED_ENV if name not in env]
        errors += [f"{k8s.ident(svc)}: {name} is empty"
                   for name in REQUIRED_ENV if env.get(name) == ""]
        if env.get("STORAGE_BACKEND") not in (None, "s3"):
            errors.append(f"{k8s.ident(svc)}: STORAGE_BACKEND={env['STORAGE_BACKEND']!r}, "
                          "a cluster needs s3")
    k8s.fail_on(errors, f"{source}: required settings")


@pytest.mark.parametrize("source", SETS)
def test_functions_accept_their_configuration(source: str) -> None:
    # What Config.from_env would do at start-up in the pod: a bad value crashes the function.
    objects = k8s.object_set(source)
    errors = []
    for svc in functions(objects).values():
        env, _ = container_env(containers(svc)[0], objects)
        # Values from Secrets that are not rendered (production's existing Secrets).
        known = {name: value if value is not None else EXTERNAL_PLACEHOLDERS.get(name, "x")
                 for name, value in env.items()}
        try:
            config.Config.from_env(known)
        except config.ConfigError as exc:
            errors.append(f"{k8s.ident(svc)}: {exc}")
    k8s.fail_on(errors, f"{source}: configurations the functions reject")


def test_local_broker_loads_exactly_the_charts_triggers(tmp_path: Path) -> None:
    objects = k8s.render_chart(None)
    rendered = k8s.of_kind(objects, "Trigger")
    broker = str(chart_values(None).get("broker", {}).get("name", "default"))
    (tmp_path / "chart.yaml").write_text(yaml.safe_dump_all(
        [o for o in objects if o["kind"] in ("Broker", "Trigger")]))
    from_chart = {t.name: t for t in broker_triggers.load(tmp_path, broker)}
    local = {t.name: t for t in broker_triggers.load(k8s.KNATIVE, broker)}
    assert sorted(from_chart) == sorted(o["metadata"]["name"] for o in rendered), \
        "the chart renders Triggers on another broker than its own"
    assert sorted(local) == sorted(from_chart), \
        f"the local broker loads {sorted(local)} from knative/, the chart renders " \
        f"{sorted(from_chart)}"
    different = [name for name in local if local[name] != from_chart[name]]
    assert not different, "\n".join(
        f"{n}: knative/ {local[n]}\n   chart {from_chart[n]}" for n in different)


@pytest.mark.parametrize("source", SETS)
def test_references_name_objects_of_the_same_render(source: str) -> None:
    objects = k8s.object_set(source)
    services = {o["metadata"]["name"] for o in k8s.ksvcs(objects)}
    brokers = {o["metadata"]["name"] for o in k8s.of_kind(objects, "Broker")}
    serving, eventing = "serving.knative.dev/v1", "eventing.knative.dev/v1"
    errors = []
    for binding in k8s.of_kind(objects, "SinkBinding"):
        spec = binding.get("spec") or {}
        subject = spec.get("subject") or {}
        if (subject.get("kind"), subject.get("apiVersion"), subject.get("name")) != (
                "Service", serving, "upload"):
            errors.append(f"{k8s.ident(binding)}: subject {subject} is not Service upload")
        if why := is_ref((spec.get("sink") or {}).get("ref"), "Broker", eventing, brokers):
            errors.append(f"{k8s.ident(binding)}: sink {why}")
    for ping in k8s.of_kind(objects, "PingSource"):
        sink = (ping.get("spec") or {}).get("sink") or {}
        if why := is_ref(sink.get("ref"), "Service", serving, {"upload"} & services):
            errors.append(f"{k8s.ident(ping)}: sink {why}")
        if sink.get("uri") != "/sweep":
            errors.append(f"{k8s.ident(ping)}: sink uri {sink.get('uri')!r} is not /sweep")
    for trigger in k8s.of_kind(objects, "Trigger"):
        spec = trigger.get("spec") or {}
        if spec.get("broker") not in brokers:
            errors.append(f"{k8s.ident(trigger)}: broker {spec.get('broker')!r} is not rendered")
        if why := is_ref((spec.get("subscriber") or {}).get("ref"), "Service", serving, services):
            errors.append(f"{k8s.ident(trigger)}: subscriber {why}")
        sink = (spec.get("delivery") or {}).get("deadLetterSink") or {}
        if "ref" in sink and (why := is_ref(sink["ref"], "Service", serving, services)):
            errors.append(f"{k8s.ident(trigger)}: deadLetterSink {why}")
    kinds = {o["kind"] for o in objects}
    errors += [f"no {kind} rendered" for kind in ("SinkBinding", "PingSource", "Trigger")
               if kind not in kinds]
    k8s.fail_on(errors, f"{source}: dangling references")


@pytest.mark.parametrize("source", SETS)
def test_image_uploaded_goes_to_resize_with_its_dead_letter_endpoint(source: str) -> None:
    objects = k8s.object_set(source)
    uploaded = {t for t in expected_types(prefix_of(source)) if t.endswith(".image.uploaded")}
    routes = [t for t in k8s.of_kind(objects, "Trigger")
              if any(v in uploaded for d, v in filtered_types(t) if d == "exact")]
    assert routes, f"{source}: no Trigger filters on {sorted(uploaded)}"
    for trigger in routes:
        spec = trigger["spec"]
        assert (spec["subscriber"].get("ref") or {}).get("name") == "resize", k8s.ident(trigger)
        sink = (spec.get("delivery") or {}).get("deadLetterSink") or {}
        assert (sink.get("ref") or {}).get("name") == "resize", f"{k8s.ident(trigger)}: {sink}"
        assert sink.get("uri") == "/dead-letter", f"{k8s.ident(trigger)}: {sink}"


@pytest.mark.parametrize("source", SETS)
def test_functions_pods_carry_the_scrape_annotations(source: str) -> None:
    errors = []
    for name, svc in functions(k8s.object_set(source)).items():
        annotations = template_annotations(svc)
        ports = [str(p["containerPort"]) for c in containers(svc) for p in c.get("ports", [])]
        wanted = {"prometheus.io/scrape": "true", "prometheus.io/path": "/metrics",
                  "prometheus.io/port": ports[0] if ports else "?"}
        errors += [f"{name}: {key} is {annotations.get(key)!r}, not {value!r}"
                   for key, value in wanted.items() if annotations.get(key) != value]
    k8s.fail_on(errors, f"{source}: scrape annotations")

"""Knative Serving's webhook for serving.knative.dev/v1 Service, mirrored: SetDefaults, then
Validate, as the defaulting and validating admission controllers run them on a create.

Source: knative/serving tag knative-v1.23.0:
- pkg/apis/serving/v1/service_defaults.go, configuration_defaults.go, revision_defaults.go,
  route_defaults.go (SetDefaults);
- pkg/apis/serving/v1/service_validation.go, configuration_validation.go,
  revision_validation.go, route_validation.go (Validate);
- pkg/apis/serving/metadata_validation.go (ValidateObjectMetadata and friends);
- knative/networking pkg/apis/networking/metadata_validation.go (ValidateAnnotations), at the
  commit serving's go.mod pins (c7a7b772cac9).
The pod spec rules are in webhooks.podspec, the autoscaling annotations' in
webhooks.autoscaling. Functions return lists of FieldError (str); [] means admitted.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from tests.support.webhooks import autoscaling, goparse, podspec
from tests.support.webhooks.config import DEFAULT, ENABLED, Config
from tests.support.webhooks.pkg_apis import (
    FieldError,
    err_disallowed_fields,
    err_generic,
    err_invalid_key_name,
    err_invalid_value,
    err_missing_one_of,
    err_multiple_one_of,
    err_out_of_bounds,
    key_priority_get,
    validate_object_metadata,
    via,
)

Obj = dict[str, Any]
GROUP = "serving.knative.dev"
CREATOR = f"{GROUP}/creator"  # serving.CreatorAnnotation
UPDATER = f"{GROUP}/lastModifier"  # serving.UpdaterAnnotation
ROLLOUT_DURATION = (f"{GROUP}/rollout-duration", f"{GROUP}/rolloutDuration")
PROGRESS_DEADLINE = (f"{GROUP}/progress-deadline",)
QUEUE_SIDECAR_PERCENTAGE = (f"queue.sidecar.{GROUP}/resource-percentage",
                            f"queue.sidecar.{GROUP}/resourcePercentage")
QUEUE_SIDECAR_QUANTITIES = tuple(
    f"queue.sidecar.{GROUP}/{resource}-resource-{kind}"
    for resource in ("cpu", "memory", "ephemeral-storage") for kind in ("request", "limit"))
# networking.allowedAnnotations: the networking.knative.dev/* keys a template may carry.
NETWORKING_GROUP = "networking.knative.dev"
NETWORKING_ALLOWED_ANNOTATIONS = frozenset({
    f"{NETWORKING_GROUP}/ingress.class", f"{NETWORKING_GROUP}/certificate.class",
    f"{NETWORKING_GROUP}/disableAutoTLS", f"{NETWORKING_GROUP}/disable-external-domain-tls",
    f"{NETWORKING_GROUP}/http-option", f"{NETWORKING_GROUP}/ingress-class",
    f"{NETWORKING_GROUP}/certificate-class", f"{NETWORKING_GROUP}/disable-auto-tls",
    f"{NETWORKING_GROUP}/http-protocol"})
# The Service label the route reconciler reads (networking.VisibilityLabelKey) and the one
# value it acts on (serving.VisibilityClusterLocal): pkg/reconciler/route/resources/filters.go
# IsClusterLocalService. The webhook does not check it: another value makes the Route public.
VISIBILITY_LABEL = f"{NETWORKING_GROUP}/visibility"
VISIBILITY_CLUSTER_LOCAL = "cluster-local"


def _template(svc: Mapping[str, Any]) -> Obj:
    return (svc.get("spec") or {}).get("template") or {}


def _annotations(meta: Mapping[str, Any] | None) -> dict[str, str]:
    return {k: str(v) for k, v in ((meta or {}).get("annotations") or {}).items()}


# ---------------------------------------------------------------- SetDefaults


def service_set_defaults(cfg: Config, svc: Obj, username: str | None = None) -> Obj:
    """Service.SetDefaults on a create: a defaulted copy (ServiceSpec.SetDefaults, then
    serving.SetUserInfo when the request carries a user)."""
    out = copy.deepcopy(svc)
    spec = out.setdefault("spec", {})
    configuration_spec_set_defaults(cfg, spec, out.get("metadata") or {})
    route_spec_set_defaults(spec, has_default_configuration_name=True)
    if username is not None:
        set_user_info(out, username)
    return out


def configuration_spec_set_defaults(cfg: Config, spec: Obj, parent: Mapping[str, Any]) -> None:
    """ConfigurationSpec.SetDefaults on a create (no previous spec): the template's."""
    template = spec.setdefault("template", {})
    revision_spec_set_defaults(cfg, template.setdefault("spec", {}), parent)


def revision_spec_set_defaults(cfg: Config, rs: Obj, parent: Mapping[str, Any],
                               in_create: bool = True) -> None:
    """RevisionSpec.SetDefaults: timeouts, containerConcurrency, container names, resources,
    readiness probe defaults, enableServiceLinks (on a create only), read-only mounts,
    secure defaults."""
    d = cfg.defaults
    if not rs.get("timeoutSeconds"):
        rs["timeoutSeconds"] = d.revision_timeout_seconds
    timeout = int(rs["timeoutSeconds"])
    if rs.get("idleTimeoutSeconds") is None and \
            0 != d.revision_idle_timeout_seconds < timeout:
        rs["idleTimeoutSeconds"] = d.revision_idle_timeout_seconds
    if rs.get("responseStartTimeoutSeconds") is None and \
            0 != d.revision_response_start_timeout_seconds < timeout:
        rs["responseStartTimeoutSeconds"] = d.revision_response_start_timeout_seconds
    if rs.get("containerConcurrency") is None:
        rs["containerConcurrency"] = d.container_concurrency
    containers: list[Obj] = rs.get("containers") or []
    init_containers: list[Obj] = rs.get("initContainers") or []
    names = {c.get("name") for c in [*containers, *init_containers]}
    apply_default_container_names(containers, names, d.user_container_name)
    apply_default_container_names(init_containers, names, d.init_container_name)
    for c in containers:
        _apply_default(cfg, rs, c, in_create)
        _default_security_context(cfg, rs.get("securityContext"), c)
    for c in init_containers:
        _default_security_context(cfg, rs.get("securityContext"), c)
    del parent  # container-name-template may read it; the default template does not


def _apply_default(cfg: Config, rs: Obj, container: Obj, in_create: bool) -> None:
    """RevisionSpec.applyDefault."""
    resources = container.setdefault("resources", {})
    for kind, defaults in (("requests", cfg.defaults.resource_requests),
                           ("limits", cfg.defaults.resource_limits)):
        section = resources.setdefault(kind, {}) if defaults else resources.get(kind)
        for name, quantity in defaults.items():
            assert section is not None
            section.setdefault(name, quantity)
    if len(rs.get("containers") or []) == 1 or container.get("ports"):
        apply_user_container_default_readiness_probe(container)
    apply_readiness_probe_defaults(container)
    apply_grpc_probe_defaults(container)
    if rs.get("enableServiceLinks") is None and in_create \
            and cfg.defaults.enable_service_links is not None:
        rs["enableServiceLinks"] = cfg.defaults.enable_service_links
    writable = {v.get("name") for v in rs.get("volumes") or []
                if any(v.get(k) is not None
                       for k in ("emptyDir", "persistentVolumeClaim", "ephemeral"))}
    for mount in container.get("volumeMounts") or []:
        if mount.get("name") not in writable:
            mount["readOnly"] = True


def apply_user_container_default_readiness_probe(container: Obj) -> None:
    """RevisionSpec.applyUserContainerDefaultReadinessProbe: a tcpSocket probe when none."""
    probe = container.setdefault("readinessProbe", {})
    if not any(probe.get(h) is not None for h in ("tcpSocket", "httpGet", "exec", "grpc")):
        probe["tcpSocket"] = {}


def apply_readiness_probe_defaults(container: Obj) -> None:
    """RevisionSpec.applyReadinessProbeDefaults: successThreshold 1; with a periodSeconds,
    Kubernetes' failureThreshold 3 and timeoutSeconds 1. Without one, nothing else."""
    probe = container.get("readinessProbe")
    if probe is None:
        return
    if not probe.get("successThreshold"):
        probe["successThreshold"] = 1
    if probe.get("periodSeconds"):
        if not probe.get("failureThreshold"):
            probe["failureThreshold"] = 3
        if not probe.get("timeoutSeconds"):
            probe["timeoutSeconds"] = 1


def apply_grpc_probe_defaults(container: Obj) -> None:
    """RevisionSpec.applyGRPCProbeDefaults: grpc.service "" when unset."""
    for field in ("readinessProbe", "livenessProbe", "startupProbe"):
        grpc = (container.get(field) or {}).get("grpc")
        if grpc is not None and grpc.get("service") is None:
            grpc["service"] = ""


def _default_security_context(cfg: Config, psc: Obj | None, container: Obj) -> None:
    """RevisionSpec.defaultSecurityContext: only under secure-pod-defaults."""
    flag = cfg.flag("secure-pod-defaults")
    if flag not in (ENABLED, "AllowRootBounded"):
        return
    psc = psc or {}
    sc = dict(container.get("securityContext") or {})
    sc.setdefault("allowPrivilegeEscalation", False)
    if not (psc.get("seccompProfile") or {}).get("type"):
        seccomp = dict(sc.get("seccompProfile") or {})
        seccomp["type"] = seccomp.get("type") or "RuntimeDefault"
        sc["seccompProfile"] = seccomp
    if sc.get("capabilities") is None:
        sc["capabilities"] = {"drop": ["ALL"]}
        if any(int(p.get("containerPort") or 0) < 1024 for p in container.get("ports") or []):
            sc["capabilities"]["add"] = ["NET_BIND_SERVICE"]
    if flag == ENABLED and psc.get("runAsNonRoot") is None:
        sc.setdefault("runAsNonRoot", True)
    container["securityContext"] = sc


def apply_default_container_names(containers: list[Obj], names: set[Any], default: str) -> None:
    """applyDefaultContainerNames: unnamed containers get the default name (with -N suffixes
    when there are several or it clashes)."""
    suffix = 0
    for c in containers:
        if c.get("name"):
            continue
        name = default
        if len(containers) > 1 or name in names:
            while True:
                name = f"{default}-{suffix}"  # kmeta.ChildName: short names are kept whole
                suffix += 1
                if name not in names:
                    break
        c["name"] = name


def route_spec_set_defaults(spec: Obj, has_default_configuration_name: bool) -> None:
    """RouteSpec.SetDefaults and TrafficTarget.SetDefaults: within a Service, no traffic means
    100% to the latest revision."""
    if not spec.get("traffic") and has_default_configuration_name:
        spec["traffic"] = [{"percent": 100, "latestRevision": True}]
    for target in spec.get("traffic") or []:
        if target.get("latestRevision") is None:
            target["latestRevision"] = not target.get("revisionName")
        if target.get("percent") is None:
            target["percent"] = 0


def set_user_info(obj: Obj, username: str) -> None:
    """serving.SetUserInfo on a create: creator and lastModifier annotations."""
    annotations = obj.setdefault("metadata", {}).setdefault("annotations", {})
    annotations[CREATOR] = username
    annotations[UPDATER] = username


# ---------------------------------------------------------------- Validate


def service_validate(cfg: Config, svc: Mapping[str, Any]) -> list[FieldError]:
    """Service.Validate on a create: metadata (no autoscaling annotations, rollout duration),
    then ServiceSpec.Validate."""
    meta = svc.get("metadata") or {}
    errs = validate_object_metadata_serving(cfg, meta, allow_autoscaling_annotations=False)
    errs += via("annotations", validate_rollout_duration_annotation(_annotations(meta)))
    errs = via("metadata", errs)
    return errs + via("spec", service_spec_validate(cfg, svc.get("spec") or {}, meta))


def service_spec_validate(cfg: Config, spec: Mapping[str, Any],
                          parent: Mapping[str, Any]) -> list[FieldError]:
    """ServiceSpec.Validate: ConfigurationSpec.Validate and RouteSpec.Validate (with the
    Service's default configuration name)."""
    template = spec.get("template") or {}
    return [*via("template", revision_template_spec_validate(cfg, template, parent)),
            *via("traffic", validate_traffic_list(spec.get("traffic") or [],
                                                  has_default_configuration_name=True))]


def validate_object_metadata_serving(cfg: Config, meta: Mapping[str, Any],
                                     allow_autoscaling_annotations: bool) -> list[FieldError]:
    """serving.ValidateObjectMetadata: apis.ValidateObjectMetadata, then autoscaling
    annotations validated (Revision) or refused (Service, Configuration, Route)."""
    errs = validate_object_metadata(meta)
    annotations = _annotations(meta)
    if allow_autoscaling_annotations:
        errs += via("annotations", autoscaling.validate_annotations(cfg.autoscaler, annotations))
    else:
        errs += via("annotations", validate_has_no_autoscaling_annotation(annotations))
    return errs


def validate_has_no_autoscaling_annotation(annotations: Mapping[str, str]) -> list[FieldError]:
    """serving.ValidateHasNoAutoscalingAnnotation: autoscaling.knative.dev/* belongs on
    spec.template.metadata.annotations."""
    return [err_invalid_key_name(key, "", 'autoscaling annotations must be put under '
                                          '"spec.template.metadata.annotations" to work')
            for key in sorted(annotations) if key.startswith(autoscaling.GROUP)]


def _second_precision_duration(keys: tuple[str, ...], annotations: Mapping[str, str],
                               what: str) -> list[FieldError]:
    key, value, _ = key_priority_get(keys, annotations)
    if not value:
        return []
    try:
        duration = goparse.parse_duration(value)
    except ValueError:
        return [err_invalid_value(value, key)]
    if duration % goparse.SECOND:
        return [FieldError(f"{what}={value} is not at second precision", [key])]
    if duration < 0:
        return [FieldError(f"{what}={value} must be positive", [key])]
    return []


def validate_rollout_duration_annotation(annotations: Mapping[str, str]) -> list[FieldError]:
    """serving.ValidateRolloutDurationAnnotation: a Go duration, whole seconds, >= 0."""
    return _second_precision_duration(ROLLOUT_DURATION, annotations, "rollout-duration")


def validate_container_concurrency(cfg: Config, cc: int | None) -> list[FieldError]:
    """serving.ValidateContainerConcurrency: in [0 (1 unless allow-container-concurrency-zero),
    container-concurrency-max-limit]."""
    if cc is None:
        return []
    low = 0 if cfg.defaults.allow_container_concurrency_zero else 1
    high = cfg.defaults.container_concurrency_max_limit
    if not low <= int(cc) <= high:
        return [err_out_of_bounds(cc, low, high, "")]
    return []


def revision_template_spec_validate(cfg: Config, rts: Mapping[str, Any],
                                    parent: Mapping[str, Any]) -> list[FieldError]:
    """RevisionTemplateSpec.Validate: the spec, the template's autoscaling and networking
    annotations, its name, queue-proxy resource and progress-deadline annotations."""
    meta = rts.get("metadata") or {}
    annotations = _annotations(meta)
    errs = via("spec", revision_spec_validate(cfg, rts.get("spec") or {}))
    errs += via("metadata.annotations",
                autoscaling.validate_annotations(cfg.autoscaler, annotations))
    errs += via("metadata.annotations", networking_validate_annotations(annotations))
    errs += validate_revision_name(str(meta.get("name") or ""),
                                   str(meta.get("generateName") or ""), parent)
    errs += via("metadata.annotations", validate_queue_sidecar_resource_annotations(annotations))
    errs += via("metadata.annotations", validate_progress_deadline_annotation(annotations))
    return errs


def revision_spec_validate(cfg: Config, rs: Mapping[str, Any]) -> list[FieldError]:
    """RevisionSpec.Validate: ValidatePodSpec, timeoutSeconds, containerConcurrency."""
    errs = podspec.validate_pod_spec(cfg, rs)
    if rs.get("timeoutSeconds") is not None:
        errs += validate_timeout_seconds(cfg, int(rs["timeoutSeconds"]))
    if rs.get("containerConcurrency") is not None:
        errs += via("containerConcurrency",
                    validate_container_concurrency(cfg, int(rs["containerConcurrency"])))
    return errs


def validate_timeout_seconds(cfg: Config, timeout: int) -> list[FieldError]:
    """validateTimeoutSeconds: in [0, max-revision-timeout-seconds]."""
    high = cfg.defaults.max_revision_timeout_seconds
    if timeout != 0 and (timeout > high or timeout < 0):
        return [err_out_of_bounds(timeout, 0, high, "timeoutSeconds")]
    return []


def validate_revision_name(name: str, generate_name: str,
                           parent: Mapping[str, Any]) -> list[FieldError]:
    """validateRevisionName: a pinned template name is a DNS-1035 label prefixed with the
    parent's name."""
    if generate_name:
        msgs = goparse.name_is_dns1035_label(generate_name, True)
        if msgs:
            return [err_invalid_value(f"not a DNS 1035 label prefix: {goparse.go_list(msgs)}",
                                      "metadata.generateName")]
    if name:
        msgs = goparse.name_is_dns1035_label(name, False)
        if msgs:
            return [err_invalid_value(f"not a DNS 1035 label: {goparse.go_list(msgs)}",
                                      "metadata.name")]
        parent_name = str(parent.get("name") or "")
        if not parent_name and parent.get("generateName"):
            return [err_disallowed_fields("metadata.name")]
        prefix = parent_name + "-"
        if not name.startswith(prefix):
            return [err_invalid_value(f'"{name}" must have prefix "{prefix}"', "metadata.name")]
    return []


def validate_queue_sidecar_resource_annotations(m: Mapping[str, str]) -> list[FieldError]:
    """validateQueueSidecarResourceAnnotations: the deprecated percentage (a warning, in
    [0.1, 100]) and resource quantities for the queue-proxy."""
    errs: list[FieldError] = []
    key, value, found = key_priority_get(QUEUE_SIDECAR_PERCENTAGE, m)
    if found:
        errs.append(err_generic("Queue proxy resource percentage annotation is deprecated. "
                                "Please use the available annotations to explicitly set "
                                "resource values per service").via(f"[{key}]").at_warning())
        try:
            percentage = goparse.parse_float(value)
            if not 0.1 <= percentage <= 100:
                errs.append(err_out_of_bounds(percentage, 0.1, 100.0, "").via(f"[{key}]"))
        except ValueError:
            errs.append(err_invalid_value(value, "").via(f"[{key}]"))
    for key in QUEUE_SIDECAR_QUANTITIES:
        if key in m:
            try:
                goparse.parse_quantity(m[key])
            except ValueError:
                errs.append(err_invalid_value(m[key], "").via(f"[{key}]"))
    return errs


def validate_progress_deadline_annotation(annotations: Mapping[str, str]) -> list[FieldError]:
    """validateProgressDeadlineAnnotation: a Go duration, whole seconds, >= 0."""
    return _second_precision_duration(PROGRESS_DEADLINE, annotations, "progress-deadline")


def networking_validate_annotations(annotations: Mapping[str, str]) -> list[FieldError]:
    """knative.dev/networking networking.ValidateAnnotations: only known
    networking.knative.dev/* keys."""
    return [err_invalid_key_name(key, "") for key in sorted(annotations)
            if key.startswith(NETWORKING_GROUP) and key not in NETWORKING_ALLOWED_ANNOTATIONS]


def validate_traffic_list(traffic: list[Obj],
                          has_default_configuration_name: bool) -> list[FieldError]:
    """validateTrafficList: each target valid, tags unique DNS-1035 labels, percents sum to
    100."""
    errs: list[FieldError] = []
    tags: dict[str, int] = {}
    total = 0
    for i, target in enumerate(traffic):
        errs += via(f"[{i}]", traffic_target_validate(target, has_default_configuration_name))
        total += int(target.get("percent") or 0)
        tag = str(target.get("tag") or "")
        if not tag:
            continue
        msgs = goparse.is_dns1035_label(tag)
        if msgs:
            errs.append(err_invalid_value(f"not a DNS 1035 label: {goparse.go_list(msgs)}", "")
                        .via(f"tag[{i}]"))
        if tag in tags:
            errs.append(FieldError(f'Multiple definitions for "{tag}"',
                                   [f"[{i}].tag", f"[{tags[tag]}].tag"]))
        else:
            tags[tag] = i
    if total != 100:
        errs.append(FieldError(f"Traffic targets sum to {total}, want 100", [""]))
    return errs


def traffic_target_validate(tt: Mapping[str, Any],
                            has_default_configuration_name: bool) -> list[FieldError]:
    """TrafficTarget.Validate in a spec: latestRevision agrees with revisionName, one of
    revisionName/configurationName, percent in [0, 100], no url."""
    errs: list[FieldError] = []
    revision = str(tt.get("revisionName") or "")
    configuration = str(tt.get("configurationName") or "")
    latest = tt.get("latestRevision")
    if latest is not None and bool(revision) == bool(latest):
        errs.append(err_generic(f'may not set revisionName "{revision}" when latestRevision '
                                f"is {str(bool(latest)).lower()}", "latestRevision"))
    if has_default_configuration_name and configuration:
        errs.append(err_disallowed_fields("configurationName"))
    elif revision and configuration:
        errs.append(err_multiple_one_of("revisionName", "configurationName"))
    elif revision:
        errs += [err_invalid_key_name(revision, "revisionName", m)
                 for m in goparse.is_qualified_name(revision)]
    elif configuration:
        errs += [err_invalid_key_name(configuration, "configurationName", m)
                 for m in goparse.is_qualified_name(configuration)]
    elif not has_default_configuration_name:
        errs.append(err_missing_one_of("revisionName", "configurationName"))
    percent = tt.get("percent")
    if percent is not None and not 0 <= int(percent) <= 100:
        errs.append(err_out_of_bounds(percent, 0, 100, "percent"))
    if tt.get("url"):
        errs.append(err_disallowed_fields("url"))
        if not tt.get("tag"):
            errs.append(err_disallowed_fields("url"))
    return errs


# ---------------------------------------------------------------- the webhook


def admit_service(svc: Obj, cfg: Config = DEFAULT,
                  username: str = "kubernetes-admin") -> tuple[Obj, list[FieldError]]:
    """A create through Serving's webhooks: the defaulting webhook's Service.SetDefaults, then
    the validating webhook's Service.Validate. Returns the defaulted object and every
    FieldError (warnings included; see pkg_apis.errors_only)."""
    defaulted = service_set_defaults(cfg, svc, username)
    return defaulted, service_validate(cfg, defaulted)

"""Knative Serving's admission webhooks (knative/serving knative-v1.23.0), mirrored in
tests/support/webhooks, run on every Knative Service the chart renders and knative/ holds.

Each test names the Go function it mirrors (package path, function). The rendered Services
must pass every rule; for each rule class a deliberately broken copy of a rendered Service
must be refused with Knative's message, which proves the check can fail. The table of
functions is docs/knative-webhooks-serving.md.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support import k8s
from tests.support.webhooks import autoscaling, fieldmask, goparse, pkg_apis, podspec, serving
from tests.support.webhooks.config import DEFAULT, DEFAULT_FEATURES, DISABLED, ENABLED, Config
from tests.support.webhooks.pkg_apis import FieldError, errors_only, warnings_only

Obj = dict[str, Any]
# The chart's optional branches, turned on: a digest image, pull secrets, a scale-down delay on
# every function, every function cluster-local, no event-display.
OPTIONS = ("image.digest=sha256:" + "0" * 64, "image.pullSecrets={regcred}",
           "upload.scaleDownDelay=30s", "status.scaleDownDelay=1h", "upload.clusterLocal=true",
           "status.clusterLocal=true", "integrations.eventDisplay.enabled=false")
SOURCES: dict[str, Callable[[], list[Obj]]] = {
    **k8s.OBJECT_SETS,
    "chart-options": functools.partial(k8s.render_chart, None, sets=OPTIONS),
}
SERVING_API = "serving.knative.dev/v1"


def services(source: str) -> list[Obj]:
    """The Knative Services of an object set (the functions at least)."""
    found = k8s.ksvcs(SOURCES[source]())
    names = {s["metadata"]["name"] for s in found}
    assert set(k8s.FUNCTIONS) <= names, f"{source}: Services {sorted(names)}"
    return found


def function_service(source: str, name: str = "upload") -> Obj:
    """One of the functions' rendered Services."""
    return next(s for s in services(source) if s["metadata"]["name"] == name)


def defaulted(svc: Obj, cfg: Config = DEFAULT) -> Obj:
    """The Service as the defaulting webhook hands it to the validating one."""
    return serving.service_set_defaults(cfg, svc, "kubernetes-admin")


def template_spec(svc: Obj) -> Obj:
    """spec.template.spec."""
    return svc["spec"]["template"]["spec"]


def template_annotations(svc: Obj) -> dict[str, str]:
    """spec.template.metadata.annotations."""
    return {k: str(v) for k, v in
            (svc["spec"]["template"].get("metadata") or {}).get("annotations", {}).items()}


def container(svc: Obj) -> Obj:
    """The serving container (the chart renders one per Service)."""
    (only,) = template_spec(svc)["containers"]
    return only


def _volumes(cfg: Config, svc: Obj) -> dict[str, Obj]:
    spec = template_spec(svc)
    volumes, _ = podspec.validate_volumes(cfg, spec.get("volumes") or [],
                                          podspec.all_mounted_volumes(spec["containers"]))
    return volumes


def _port(svc: Obj) -> Obj:
    return podspec.validate_containers_ports(template_spec(svc)["containers"])[0]


# ---------------------------------------------------------------- every rule, every render

# Go function (package path and name) -> its mirror applied to a defaulted Service.
RULES: dict[str, Callable[[Config, Obj], list[FieldError]]] = {
    "serving/pkg/apis/serving/v1.(*Service).Validate":
        serving.service_validate,
    "pkg/apis.ValidateObjectMetadata":
        lambda cfg, s: pkg_apis.validate_object_metadata(s["metadata"]),
    "serving/pkg/apis/serving.ValidateObjectMetadata":
        lambda cfg, s: serving.validate_object_metadata_serving(cfg, s["metadata"], False),
    "serving/pkg/apis/serving.ValidateHasNoAutoscalingAnnotation":
        lambda cfg, s: serving.validate_has_no_autoscaling_annotation(
            s["metadata"].get("annotations") or {}),
    "serving/pkg/apis/serving.ValidateRolloutDurationAnnotation":
        lambda cfg, s: serving.validate_rollout_duration_annotation(
            s["metadata"].get("annotations") or {}),
    "serving/pkg/apis/serving/v1.(*RevisionTemplateSpec).Validate":
        lambda cfg, s: serving.revision_template_spec_validate(cfg, s["spec"]["template"],
                                                               s["metadata"]),
    "serving/pkg/apis/serving/v1.(*RevisionSpec).Validate":
        lambda cfg, s: serving.revision_spec_validate(cfg, template_spec(s)),
    "serving/pkg/apis/serving/v1.validateTimeoutSeconds":
        lambda cfg, s: serving.validate_timeout_seconds(cfg, template_spec(s)["timeoutSeconds"]),
    "serving/pkg/apis/serving.ValidateContainerConcurrency":
        lambda cfg, s: serving.validate_container_concurrency(
            cfg, template_spec(s)["containerConcurrency"]),
    "serving/pkg/apis/serving/v1.validateRevisionName":
        lambda cfg, s: serving.validate_revision_name(
            str(s["spec"]["template"].get("metadata", {}).get("name") or ""), "", s["metadata"]),
    "serving/pkg/apis/serving/v1.validateQueueSidecarResourceAnnotations":
        lambda cfg, s: serving.validate_queue_sidecar_resource_annotations(
            template_annotations(s)),
    "serving/pkg/apis/serving/v1.validateProgressDeadlineAnnotation":
        lambda cfg, s: serving.validate_progress_deadline_annotation(template_annotations(s)),
    "networking/pkg/apis/networking.ValidateAnnotations":
        lambda cfg, s: serving.networking_validate_annotations(template_annotations(s)),
    "serving/pkg/apis/serving/v1.validateTrafficList":
        lambda cfg, s: serving.validate_traffic_list(s["spec"]["traffic"], True),
    "serving/pkg/apis/autoscaling.ValidateAnnotations":
        lambda cfg, s: autoscaling.validate_annotations(cfg.autoscaler, template_annotations(s)),
    "serving/pkg/apis/autoscaling.validateMinMaxScale":
        lambda cfg, s: autoscaling.validate_min_max_scale(cfg.autoscaler,
                                                          template_annotations(s)),
    "serving/pkg/apis/autoscaling.validateScaleDownDelay":
        lambda cfg, s: autoscaling.validate_scale_down_delay(template_annotations(s)),
    "serving/pkg/apis/serving.ValidatePodSpec":
        lambda cfg, s: podspec.validate_pod_spec(cfg, template_spec(s)),
    "serving/pkg/apis/serving.PodSpecMask":
        lambda cfg, s: pkg_apis.check_disallowed_fields(
            {k: v for k, v in template_spec(s).items() if k not in podspec.REVISION_SPEC_FIELDS},
            fieldmask.pod_spec_mask(cfg, template_spec(s))),
    "serving/pkg/apis/serving.ValidatePodSecurityContext":
        lambda cfg, s: podspec.validate_pod_security_context(
            cfg, template_spec(s).get("securityContext")),
    "serving/pkg/apis/serving.ValidateVolumes":
        lambda cfg, s: podspec.validate_volumes(
            cfg, template_spec(s).get("volumes") or [],
            podspec.all_mounted_volumes(template_spec(s)["containers"]))[1],
    "serving/pkg/apis/serving.validateContainersPorts":
        lambda cfg, s: podspec.validate_containers_ports(template_spec(s)["containers"])[1],
    "serving/pkg/apis/serving.ValidateUserContainer":
        lambda cfg, s: podspec.validate_user_container(cfg, container(s), _volumes(cfg, s),
                                                       _port(s)),
    "serving/pkg/apis/serving.validateReadinessProbe":
        lambda cfg, s: podspec.validate_readiness_probe(container(s).get("readinessProbe"),
                                                        _port(s), True),
    "serving/pkg/apis/serving.validateProbe":
        lambda cfg, s: [e for f in ("livenessProbe", "startupProbe")
                        for e in podspec.validate_probe(container(s).get(f), _port(s), True)],
    "serving/pkg/apis/serving.validate":
        lambda cfg, s: podspec.validate(cfg, container(s), _volumes(cfg, s)),
    "serving/pkg/apis/serving.validateEnv":
        lambda cfg, s: podspec.validate_env(cfg, container(s).get("env") or []),
    "serving/pkg/apis/serving.validateEnvFrom":
        lambda cfg, s: podspec.validate_env_from(container(s).get("envFrom") or []),
    "serving/pkg/apis/serving.validateContainerPorts":
        lambda cfg, s: podspec.validate_container_ports(container(s).get("ports") or []),
    "serving/pkg/apis/serving.validateResources":
        lambda cfg, s: podspec.validate_resources(container(s).get("resources")),
    "serving/pkg/apis/serving.validateSecurityContext":
        lambda cfg, s: podspec.validate_security_context(cfg, container(s).get("securityContext")),
    "serving/pkg/apis/serving.validateVolumeMounts":
        lambda cfg, s: podspec.validate_volume_mounts(
            cfg, container(s).get("volumeMounts") or [], _volumes(cfg, s)),
    "go-containerregistry/pkg/name.ParseReference":
        lambda cfg, s: [FieldError(p, ["image"]) for p in [podspec.parse_reference(
            str(container(s)["image"]))] if p is not None],
}


@pytest.mark.parametrize("source", list(SOURCES))
@pytest.mark.parametrize("rule", list(RULES))
def test_rendered_services_pass(rule: str, source: str) -> None:
    """Each mirrored Serving rule admits every rendered Service after SetDefaults."""
    errors = [f"{k8s.ident(svc)}: {e}" for svc in services(source)
              for e in errors_only(RULES[rule](DEFAULT, defaulted(svc)))]
    k8s.fail_on(errors, f"{source}: refused by {rule}")


@pytest.mark.parametrize("source", list(SOURCES))
def test_no_warning_from_warn_default_container_security_context(source: str) -> None:
    """serving/pkg/apis/serving.warnDefaultContainerSecurityContext: the webhook warns on
    insecure Kubernetes defaults left unset; the chart leaves none."""
    warnings = [f"{k8s.ident(svc)}: {w}" for svc in services(source)
                for w in warnings_only(serving.service_validate(DEFAULT, defaulted(svc)))]
    k8s.fail_on(warnings, f"{source}: webhook warnings")


# ---------------------------------------------------------------- SetDefaults


@pytest.mark.parametrize("source", list(SOURCES))
def test_revision_spec_set_defaults_keeps_what_the_chart_sets(source: str) -> None:
    """serving/pkg/apis/serving/v1.(*RevisionSpec).SetDefaults, (*Service).SetDefaults and
    (*RouteSpec).SetDefaults at config-defaults' defaults: the chart's values survive, and
    what Knative adds is what its config-defaults documents (revision-timeout-seconds 300,
    revision-response-start-timeout-seconds = revision-timeout-seconds, enable-service-links
    false, successThreshold 1, 100% of traffic to the latest revision)."""
    for svc in services(source):
        out = defaulted(svc)
        spec, rendered = template_spec(out), template_spec(svc)
        where = k8s.ident(svc)
        if "timeoutSeconds" in rendered:
            assert spec["timeoutSeconds"] == rendered["timeoutSeconds"], where
        else:
            assert spec["timeoutSeconds"] == 300, where
        # responseStartTimeoutSeconds: kept when set (status's, for its long polls);
        # else defaults to 300 only below the revision's timeout.
        if "responseStartTimeoutSeconds" in rendered:
            assert spec["responseStartTimeoutSeconds"] == \
                rendered["responseStartTimeoutSeconds"], where
        elif spec["timeoutSeconds"] > 300:
            assert spec.get("responseStartTimeoutSeconds") == 300, where
        else:
            assert "responseStartTimeoutSeconds" not in spec, where
        assert "idleTimeoutSeconds" not in spec, where
        assert spec["containerConcurrency"] == rendered.get("containerConcurrency", 0), where
        assert spec["enableServiceLinks"] is False, where
        assert container(out)["name"] == container(svc).get("name", "user-container"), where
        probe, before = container(out)["readinessProbe"], container(svc).get("readinessProbe")
        if before is None:  # applyUserContainerDefaultReadinessProbe
            assert probe == {"tcpSocket": {}, "successThreshold": 1}, where
        else:
            assert probe["successThreshold"] == 1, where
            for field in ("periodSeconds", "timeoutSeconds", "failureThreshold"):
                assert probe.get(field) == before.get(field), f"{where}: {field}"
        assert out["spec"]["traffic"] == [{"percent": 100, "latestRevision": True}], where
        assert out["metadata"]["annotations"][serving.CREATOR] == "kubernetes-admin", where


def test_set_defaults_does_not_fill_period_seconds() -> None:
    """serving/pkg/apis/serving/v1.(*RevisionSpec).applyReadinessProbeDefaults fills
    failureThreshold and timeoutSeconds only when periodSeconds is set: without it the
    chart's probe reaches validateReadinessProbe as written."""
    svc = function_service("chart-default")
    probe = container(svc)["readinessProbe"]
    probe.pop("periodSeconds", None)
    probe.update(timeoutSeconds=3, failureThreshold=3)
    out = container(defaulted(svc))["readinessProbe"]
    assert "periodSeconds" not in out
    assert (out["timeoutSeconds"], out["failureThreshold"], out["successThreshold"]) == (3, 3, 1)
    bare = container(defaulted(copy.deepcopy(svc)))
    bare["readinessProbe"] = {"httpGet": {"path": "/ready"}, "periodSeconds": 5}
    serving.apply_readiness_probe_defaults(bare)
    assert (bare["readinessProbe"]["failureThreshold"],
            bare["readinessProbe"]["timeoutSeconds"]) == (3, 1)  # Kubernetes' defaults


# ---------------------------------------------------------------- broken copies


@dataclass(frozen=True)
class Broken:
    """A deliberately broken copy of a rendered Service and what Knative says to it."""

    go: str  # the Go function that refuses it
    breaks: Callable[[Obj], None]  # edits the rendered Service in place
    message: str  # a part of the FieldError (message and path) the mirror must return
    cfg: Config = DEFAULT


def _set(path: str, value: Any) -> Callable[[Obj], None]:
    """An edit that sets a dotted path (container. = the serving container)."""
    def edit(svc: Obj) -> None:
        keys = path.split(".")
        node: Any = container(svc) if keys[0] == "container" else svc
        keys = keys[1:] if keys[0] == "container" else keys
        for key in keys[:-1]:
            node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
        node[keys[-1]] = value
    return edit


def _drop(path: str) -> Callable[[Obj], None]:
    def edit(svc: Obj) -> None:
        *parents, last = path.split(".")
        node: Any = container(svc)
        for key in parents[1:]:
            node = node[key]
        node.pop(last, None)
    return edit


def _annotate(key: str, value: str, where: str = "template") -> Callable[[Obj], None]:
    def edit(svc: Obj) -> None:
        meta = svc["spec"]["template"]["metadata"] if where == "template" else svc["metadata"]
        meta.setdefault("annotations", {})[key] = value
    return edit


def _each(*edits: Callable[[Obj], None]) -> Callable[[Obj], None]:
    def edit(svc: Obj) -> None:
        for one in edits:
            one(svc)
    return edit


def _add_env(entry: Obj) -> Callable[[Obj], None]:
    return lambda svc: container(svc).setdefault("env", []).append(entry)


def _add_volume(volume: Obj, mount: Obj | None = None) -> Callable[[Obj], None]:
    def edit(svc: Obj) -> None:
        template_spec(svc).setdefault("volumes", []).append(volume)
        if mount is not None:
            container(svc).setdefault("volumeMounts", []).append(mount)
    return edit


def _add_container(extra: Obj) -> Callable[[Obj], None]:
    return lambda svc: template_spec(svc)["containers"].append(extra)


PATH = "spec.template.spec.containers[0]"
ANN = "spec.template.metadata.annotations"
MS = autoscaling.MIN_SCALE[0]
XS = autoscaling.MAX_SCALE[0]
BROKEN: dict[str, Broken] = {b.go + " " + name: b for name, b in {
    "readiness failureThreshold without periodSeconds (the chart's old defect)": Broken(
        "serving.validateReadinessProbe", _each(
            _drop("container.readinessProbe.periodSeconds"),
            _set("container.readinessProbe.failureThreshold", 3)),
        f"failureThreshold is disallowed when periodSeconds is zero: "
        f"{PATH}.readinessProbe.failureThreshold"),
    "readiness timeoutSeconds without periodSeconds": Broken(
        "serving.validateReadinessProbe", _each(
            _drop("container.readinessProbe.periodSeconds"),
            _set("container.readinessProbe.timeoutSeconds", 3)),
        f"timeoutSeconds is disallowed when periodSeconds is zero: "
        f"{PATH}.readinessProbe.timeoutSeconds"),
    "negative periodSeconds": Broken(
        "serving.validateReadinessProbe", _set("container.readinessProbe.periodSeconds", -1),
        f"expected 0 <= -1 <= 2147483647: {PATH}.readinessProbe.periodSeconds"),
    "probe on another named port": Broken(
        "serving.validateProbe", _set("container.livenessProbe.httpGet.port", "metrics"),
        f"invalid value: metrics: {PATH}.livenessProbe.httpGet.port"),
    "probe with two handlers": Broken(
        "serving.validateProbe", _set("container.livenessProbe.tcpSocket", {}),
        f"expected exactly one, got both: {PATH}.livenessProbe.httpGet, "
        f"{PATH}.livenessProbe.tcpSocket"),
    "liveness probe without a handler": Broken(
        "serving.validateProbe", _set("container.livenessProbe", {"periodSeconds": 10}),
        "expected exactly one, got neither"),
    "two container ports": Broken(
        "serving.validateContainersPorts", lambda s: container(s)["ports"].append(
            {"name": "metrics", "containerPort": 9000}),
        "more than one container port is set: spec.template.spec.containers[*].ports"),
    "queue-proxy's port": Broken(
        "serving.validateContainerPortBasic", _set("container.ports.0.containerPort", 8012),
        f"invalid value: 8012 is a reserved port: {PATH}.ports.containerPort"),
    "a port name Knative does not negotiate": Broken(
        "serving.validateContainerPorts", _set("container.ports.0.name", "http"),
        f"Port name http is not allowed: {PATH}.ports"),
    "a UDP port": Broken(
        "serving.validateContainerPorts", _set("container.ports.0.protocol", "UDP"),
        f"invalid value: UDP: {PATH}.ports.protocol"),
    "hostPort": Broken(
        "serving.ContainerPortMask", _set("container.ports.0.hostPort", 8080),
        f"must not set the field(s): {PATH}.ports.hostPort"),
    "PORT set by hand": Broken(
        "serving.validateEnvVar", _add_env({"name": "PORT", "value": "9000"}),
        '"PORT" is a reserved environment variable'),
    "K_REVISION set by hand": Broken(
        "serving.validateEnvVar", _add_env({"name": "K_REVISION", "value": "x"}),
        '"K_REVISION" is a reserved environment variable'),
    "env from the downward API": Broken(
        "serving.validateEnvValueFrom", _add_env(
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}),
        "must not set the field(s): " + PATH + ".env[{n}].valueFrom.fieldRef"),
    "envFrom with both refs": Broken(
        "serving.validateEnvFrom", _set("container.envFrom", [
            {"configMapRef": {"name": "a"}, "secretRef": {"name": "b"}}]),
        f"expected exactly one, got both: {PATH}.envFrom.configMapRef, "
        f"{PATH}.envFrom.secretRef"),
    "pod-level securityContext": Broken(
        "serving.PodSpecMask", _set("spec.template.spec.securityContext", {"runAsNonRoot": True}),
        "must not set the field(s): spec.template.spec.securityContext"),
    "nodeSelector": Broken(
        "serving.PodSpecMask", _set("spec.template.spec.nodeSelector", {"disk": "ssd"}),
        "must not set the field(s): spec.template.spec.nodeSelector"),
    "pod securityContext field outside the mask": Broken(
        "serving.ValidatePodSecurityContext",
        _set("spec.template.spec.securityContext", {"sysctls": [{"name": "a", "value": "1"}]}),
        "must not set the field(s): spec.template.spec.securityContext.sysctls",
        DEFAULT.with_features(kubernetes__podspec_securitycontext=ENABLED)),
    "a negative fsGroup": Broken(
        "serving.ValidatePodSecurityContext",
        _set("spec.template.spec.securityContext", {"fsGroup": -1}),
        "expected 0 <= -1 <= 2147483647: spec.template.spec.securityContext.fsGroup",
        DEFAULT.with_features(kubernetes__podspec_securitycontext=ENABLED)),
    "init containers": Broken(
        "serving.validateInitContainers", _set("spec.template.spec.initContainers", [
            {"name": "init", "image": "busybox"}]),
        "pod spec support for init-containers is off, but found 1 init containers"),
    "a sidecar with a probe": Broken(
        "serving.validateSidecarContainer", _add_container({
            "name": "sidecar", "image": "busybox",
            "readinessProbe": {"exec": {"command": ["true"]}}}),
        "must not set the field(s): spec.template.spec.containers[1].readinessProbe.exec"),
    "a second container with multi-container off": Broken(
        "serving.validateContainers", _add_container({"name": "sidecar", "image": "busybox"}),
        "multi-container is off, but found 2 containers",
        DEFAULT.with_features(multi_container=DISABLED)),
    "two containers named alike": Broken(
        "serving.validateContainers",
        lambda s: _add_container({"name": container(s)["name"], "image": "busybox"})(s),
        "duplicate container name"),
    "emptyDir with its flag off": Broken(
        "serving.validateVolume", lambda s: None,
        # Go's error has no path (ViaField keeps none): the volume's name says which.
        "EmptyDir volume support is disabled, but found EmptyDir volume tmp",
        DEFAULT.with_features(kubernetes__podspec_volumes_emptydir=DISABLED)),
    "a hostPath volume": Broken(
        "serving.validateVolume", _add_volume({"name": "host", "hostPath": {"path": "/"}},
                                              {"name": "host", "mountPath": "/host"}),
        "HostPath volume support is disabled, but found HostPath volume host"),
    "a persistent volume claim": Broken(
        "serving.validatePersistentVolumeClaims", _add_volume(
            {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
            {"name": "data", "mountPath": "/data"}),
        "Persistent volume claim support is disabled, but found persistent volume claim data"),
    "a volume nobody mounts": Broken(
        "serving.ValidateVolumes", _add_volume({"name": "spare", "emptyDir": {}}),
        'volume with name "spare" not mounted'),
    "a volume name that is no DNS-1123 label": Broken(
        "serving.validateVolume", _add_volume({"name": "Spare_1", "emptyDir": {}},
                                              {"name": "Spare_1", "mountPath": "/spare"}),
        "invalid value: Spare_1: spec.template.spec.volumes[1].name"),
    "an emptyDir on disk by name": Broken(
        "serving.validateEmptyDirFields", _set("spec.template.spec.volumes.0.emptyDir",
                                               {"medium": "Disk"}),
        "invalid value: Disk: spec.template.spec.volumes[0].emptyDir.medium"),
    "a mount at /dev": Broken(
        "serving.validateVolumeMounts", _set("container.volumeMounts.0.mountPath", "/dev/"),
        'mountPath "/dev" is a reserved path'),
    "a relative mountPath": Broken(
        "serving.validateVolumeMounts", _set("container.volumeMounts.0.mountPath", "tmp"),
        f"invalid value: tmp: {PATH}.volumeMounts[0].mountPath"),
    "a mount of no volume": Broken(
        "serving.validateVolumeMounts", _set("container.volumeMounts.0.name", "missing"),
        f"volumeMount has no matching volume: {PATH}.volumeMounts[0].name"),
    "a writable secret mount, made read-only by SetDefaults first": Broken(
        "v1.(*RevisionSpec).applyDefault", _add_volume(
            {"name": "creds", "secret": {"secretName": "creds"}},
            {"name": "creds", "mountPath": "/creds", "readOnly": False}),
        "", ),  # no error: the defaulting webhook runs before the validating one
    "mountPropagation": Broken(
        "serving.validateVolumeMounts", _set("container.volumeMounts.0.mountPropagation",
                                             "Bidirectional"),
        "mount propagation should be set to None or HostToContainer"),
    "a privileged container": Broken(
        "serving.SecurityContextMask", _set("container.securityContext.privileged", True),
        f"must not set the field(s): {PATH}.securityContext.privileged"),
    "seLinuxOptions": Broken(
        "serving.SecurityContextMask", _set("container.securityContext.seLinuxOptions",
                                            {"level": "s0"}),
        f"must not set the field(s): {PATH}.securityContext.seLinuxOptions"),
    "an added capability": Broken(
        "serving.CapabilitiesMask", _set("container.securityContext.capabilities.add",
                                         ["NET_ADMIN"]),
        f"must not set the field(s): {PATH}.securityContext.capabilities.add"),
    "a uid past MaxInt32": Broken(
        "serving.validateSecurityContext", _set("container.securityContext.runAsUser", 2**31),
        f"expected 0 <= 2147483648 <= 2147483647: {PATH}.securityContext.runAsUser"),
    "the queue-proxy's container name": Broken(
        "serving.validate", _set("container.name", "queue-proxy"),
        f'"queue-proxy" is a reserved container name: {PATH}.name'),
    "an image reference that does not parse": Broken(
        "serving.validate", _set("container.image", "Registry.Example/Thumbs:dev"),
        f"Failed to parse image reference: {PATH}.image"),
    "a lifecycle hook": Broken(
        "serving.ContainerMask", _set("container.lifecycle", {"preStop": {"exec": {
            "command": ["sleep", "5"]}}}),
        f"must not set the field(s): {PATH}.lifecycle"),
    "an unknown terminationMessagePolicy": Broken(
        "serving.validate", _set("container.terminationMessagePolicy", "Always"),
        f"invalid value: Always: {PATH}.terminationMessagePolicy"),
    "resource claims": Broken(
        "serving.validateResources", _set("container.resources.claims", [{"name": "gpu"}]),
        f"must not set the field(s): {PATH}.resources.claims"),
    "a bad serviceAccountName": Broken(
        "serving.ValidatePodSpec", _set("spec.template.spec.serviceAccountName", "Thumbs_SA"),
        "invalid value: Thumbs_SA: spec.template.spec.serviceAccountName"),
    "timeoutSeconds past the maximum": Broken(
        "v1.validateTimeoutSeconds", _set("spec.template.spec.timeoutSeconds", 601),
        "expected 0 <= 601 <= 600: spec.template.spec.timeoutSeconds"),
    "containerConcurrency past the limit": Broken(
        "serving.ValidateContainerConcurrency",
        _set("spec.template.spec.containerConcurrency", 1001),
        "expected 0 <= 1001 <= 1000: spec.template.spec.containerConcurrency"),
    "max-scale below min-scale": Broken(
        "autoscaling.validateMinMaxScale", _each(_annotate(MS, "5"), _annotate(XS, "2")),
        f"max-scale=2 is less than min-scale=5: {ANN}.{XS}, {ANN}.{MS}"),
    "a negative min-scale": Broken(
        "autoscaling.validateMinMaxScale", _annotate(MS, "-1"),
        f"expected 0 <= -1 <= 2147483647: {ANN}.{MS}"),
    "a min-scale that is no integer": Broken(
        "autoscaling.validateMinMaxScale", _annotate(MS, "1.5"),
        f"invalid value: 1.5: {ANN}.{MS}"),
    "max-scale past config-autoscaler's max-scale-limit": Broken(
        "autoscaling.validateMaxScaleWithinLimit", _annotate(XS, "100"),
        f"expected 1 <= 100 <= 20: {ANN}.{XS}",
        Config(autoscaler=autoscaling.AutoscalerConfig(max_scale_limit=20))),
    "a sub-second scale-down-delay": Broken(
        "autoscaling.validateScaleDownDelay",
        _annotate(autoscaling.SCALE_DOWN_DELAY[0], "1500ms"),
        "must be specified with at most second precision"),
    "a scale-down-delay past an hour": Broken(
        "autoscaling.validateScaleDownDelay", _annotate(autoscaling.SCALE_DOWN_DELAY[0], "2h"),
        f"expected 0s <= 2h <= 1h0m0s: {ANN}.{autoscaling.SCALE_DOWN_DELAY[0]}"),
    "a scale-down-delay without a unit": Broken(
        "autoscaling.validateScaleDownDelay", _annotate(autoscaling.SCALE_DOWN_DELAY[0], "30"),
        f"invalid value: 30: {ANN}.{autoscaling.SCALE_DOWN_DELAY[0]}"),
    "a 5s window": Broken(
        "autoscaling.validateWindow", _annotate(autoscaling.WINDOW[0], "5s"),
        f"expected 6s <= 5s <= 1h0m0s: {ANN}.{autoscaling.WINDOW[0]}"),
    "an unknown knative.dev class": Broken(
        "autoscaling.validateClass", _annotate(autoscaling.CLASS[0], "kpa.knative.dev"),
        f"invalid value: kpa.knative.dev: {ANN}.{autoscaling.CLASS[0]}"),
    "the cpu metric under KPA": Broken(
        "autoscaling.validateMetric", _annotate(autoscaling.METRIC[0], "cpu"),
        f"invalid value: cpu: {ANN}.{autoscaling.METRIC[0]}"),
    "a target below 0.01": Broken(
        "autoscaling.validateFloats", _annotate(autoscaling.TARGET[0], "0"),
        "target 0 should be at least 0.01"),
    "initial-scale 0": Broken(
        "autoscaling.validateInitialScale", _annotate(autoscaling.INITIAL_SCALE[0], "0"),
        f"invalid value: 0: {ANN}.{autoscaling.INITIAL_SCALE[0]}=0 not allowed by cluster"),
    "an unknown aggregation algorithm": Broken(
        "autoscaling.validateAlgorithm", _each(
            _annotate(autoscaling.CLASS[0], autoscaling.KPA),
            _annotate(autoscaling.ALGORITHM[0], "median")),
        f"invalid value: median: {ANN}.{autoscaling.ALGORITHM[0]}"),
    "a pod retention past an hour": Broken(
        "autoscaling.validateLastPodRetention", _annotate(autoscaling.RETENTION[0], "61m"),
        f"expected 0s <= 61m <= 1h0m0s: {ANN}.{autoscaling.RETENTION[0]}"),
    "min-scale on the Service's own metadata": Broken(
        "serving.ValidateHasNoAutoscalingAnnotation", _annotate(MS, "1", where="service"),
        f'invalid key name "{MS}": metadata.annotations'),
    "a sub-second rollout-duration": Broken(
        "serving.ValidateRolloutDurationAnnotation",
        _annotate(serving.ROLLOUT_DURATION[0], "1.5s", where="service"),
        "rollout-duration=1.5s is not at second precision"),
    "visibility as a template annotation": Broken(
        "networking.ValidateAnnotations",
        _annotate(serving.VISIBILITY_LABEL, serving.VISIBILITY_CLUSTER_LOCAL),
        f'invalid key name "{serving.VISIBILITY_LABEL}": {ANN}'),
    "a revision name without the Service's prefix": Broken(
        "v1.validateRevisionName", _set("spec.template.metadata.name", "thumbs-v1"),
        "must have prefix"),
    "a queue-proxy memory limit that is no quantity": Broken(
        "v1.validateQueueSidecarResourceAnnotations",
        _annotate(serving.QUEUE_SIDECAR_QUANTITIES[3], "lots"),
        f"invalid value: lots: {ANN}[{serving.QUEUE_SIDECAR_QUANTITIES[3]}]"),
    "a sub-second progress-deadline": Broken(
        "v1.validateProgressDeadlineAnnotation",
        _annotate(serving.PROGRESS_DEADLINE[0], "90.5s"),
        "progress-deadline=90.5s is not at second precision"),
    "a Service name that is no DNS-1035 label": Broken(
        "apis.ValidateObjectMetadata", _set("metadata.name", "1upload"),
        "not a DNS 1035 label"),
    "traffic that sums to 50": Broken(
        "v1.validateTrafficList", _set("spec.traffic", [{"latestRevision": True,
                                                         "percent": 50}]),
        "Traffic targets sum to 50, want 100: spec.traffic"),
    "a pinned revision with latestRevision": Broken(
        "v1.(*TrafficTarget).Validate", _set("spec.traffic", [
            {"revisionName": "upload-00001", "latestRevision": True, "percent": 100}]),
        'may not set revisionName "upload-00001" when latestRevision is true'),
}.items()}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_copy_is_refused(case: str) -> None:
    """The mirror of the Go function in the test id refuses a rendered Service broken for it."""
    broken = BROKEN[case]
    svc = function_service("chart-default")
    # The unbroken Service passes at a default install (a case may break the config instead).
    assert not errors_only(serving.admit_service(copy.deepcopy(svc))[1])
    n = len(container(svc).get("env") or [])
    broken.breaks(svc)
    _, found = serving.admit_service(svc, broken.cfg)
    errors = [str(e) for e in errors_only(found)]
    if not broken.message:  # a case Knative's defaulting repairs
        assert not errors, errors
        return
    wanted = broken.message.replace("{n}", str(n))
    assert any(wanted in e for e in errors), f"no error contains {wanted!r}: {errors}"


def test_every_rule_class_has_a_broken_copy() -> None:
    """Each Go validator the rendered Services go through has a broken copy refused by it."""
    covered = {case.split(" ")[0] for case in BROKEN}
    wanted = {"serving.validateReadinessProbe", "serving.validateProbe",
              "serving.validateContainersPorts", "serving.validateContainerPorts",
              "serving.validateEnvVar", "serving.validateEnvFrom", "serving.PodSpecMask",
              "serving.validateVolume", "serving.ValidateVolumes", "serving.validateVolumeMounts",
              "serving.SecurityContextMask", "serving.CapabilitiesMask", "serving.validate",
              "serving.validateResources", "v1.validateTimeoutSeconds",
              "serving.ValidateContainerConcurrency", "autoscaling.validateMinMaxScale",
              "autoscaling.validateScaleDownDelay", "serving.ValidateHasNoAutoscalingAnnotation",
              "networking.ValidateAnnotations", "v1.validateTrafficList",
              "apis.ValidateObjectMetadata"}
    assert wanted <= covered, sorted(wanted - covered)


def test_warn_default_container_security_context_warns_and_admits() -> None:
    """serving/pkg/apis/serving.warnDefaultContainerSecurityContext: without a
    securityContext the webhook admits the Service with one warning per insecure default."""
    svc = function_service("chart-default")
    container(svc).pop("securityContext")
    _, found = serving.admit_service(svc)
    assert not errors_only(found), found
    assert sorted(w.paths[0].rsplit(".", 1)[-1] for w in warnings_only(found)) == [
        "allowPrivilegeEscalation", "capabilities", "runAsNonRoot", "seccompProfile"]


# ---------------------------------------------------------------- flags, labels, parsers


def _crd_flags(schema: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(schema, dict):
        flag = re.search(r"feature flag - (\S+?)\.?(\s|$)", str(schema.get("description", "")))
        if flag:
            found.add(flag.group(1))
        for value in schema.values():
            found |= _crd_flags(value)
    elif isinstance(schema, list):
        for value in schema:
            found |= _crd_flags(value)
    return found


def test_every_crd_feature_flag_is_one_the_mirror_gates() -> None:
    """serving/pkg/apis/serving fieldmask.go against the Service CRD: every config-features
    flag the CRD's descriptions name is one a mirrored *Mask or validator reads."""
    if not k8s.CRDS.is_dir():
        pytest.skip(k8s.CRDS_ABSENT)
    named = _crd_flags(k8s.crd_raw_schema(SERVING_API, "Service"))
    gated = {*fieldmask.POD_SPEC_FLAGGED.values(), *fieldmask.VOLUME_SOURCES_FLAGGED.values(),
             "kubernetes.podspec-fieldref", "kubernetes.containerspec-addcapabilities",
             "kubernetes.podspec-volumes-mount-propagation", "kubernetes.podspec-securitycontext",
             "kubernetes.podspec-persistent-volume-claim"}
    assert named, "no feature flag found in the CRD's descriptions"
    assert named <= gated, sorted(named - gated)
    assert gated <= set(DEFAULT_FEATURES), sorted(gated - set(DEFAULT_FEATURES))


@pytest.mark.parametrize("flag,edit", [
    ("kubernetes.podspec-fieldref", _add_env(
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}})),
    ("kubernetes.podspec-nodeselector", _set("spec.template.spec.nodeSelector", {"a": "b"})),
    ("kubernetes.podspec-securitycontext",
     _set("spec.template.spec.securityContext", {"runAsNonRoot": True})),
    ("kubernetes.podspec-volumes-hostpath", _add_volume(
        {"name": "host", "hostPath": {"path": "/srv"}},
        {"name": "host", "mountPath": "/host", "readOnly": True})),
])
def test_a_feature_flag_admits_the_field_it_gates(flag: str, edit: Callable[[Obj], None]) -> None:
    """serving/pkg/apis/config.defaultFeaturesConfig and the masks: the field refused at the
    default is admitted with its flag Enabled (so the refusals above come from the flag)."""
    svc = function_service("chart-default")
    edit(svc)
    assert errors_only(serving.admit_service(copy.deepcopy(svc))[1]), flag
    on = Config(features={**DEFAULT_FEATURES, flag: ENABLED})
    assert not errors_only(serving.admit_service(svc, on)[1])


@pytest.mark.parametrize("source", list(SOURCES))
def test_visibility_label_is_one_the_route_reconciler_acts_on(source: str) -> None:
    """serving/pkg/reconciler/route/resources.IsClusterLocalService (not a webhook: any other
    value is admitted and leaves the Route public): the label is exactly "cluster-local"."""
    errors = [f"{k8s.ident(svc)}: {serving.VISIBILITY_LABEL}={value!r}"
              for svc in services(source)
              for key, value in (svc["metadata"].get("labels") or {}).items()
              if key == serving.VISIBILITY_LABEL and value != serving.VISIBILITY_CLUSTER_LOCAL]
    k8s.fail_on(errors, f"{source}: visibility labels the reconciler ignores")
    if source == "chart-options":
        local = {s["metadata"]["name"] for s in services(source)
                 if s["metadata"]["labels"].get(serving.VISIBILITY_LABEL)}
        assert local == set(k8s.FUNCTIONS), local


# Go's own test vectors: time/time_test.go parseDurationTests, strconv/atoi_test.go.
@pytest.mark.parametrize("text,nanos", [
    ("0", 0), ("5s", 5 * 10**9), ("30s", 30 * 10**9), ("1478s", 1478 * 10**9), ("-5s", -5 * 10**9),
    ("5.6s", 5_600_000_000), ("1h1m1s", 3661 * 10**9), (".5s", 500_000_000),
    ("1.004s", 1_004_000_000),
    ("11us", 11_000), ("3h30m", 12_600 * 10**9), ("10.5s4m", (240 + 10.5) * 10**9),
    ("52763797000ns", 52_763_797_000)])
def test_parse_duration_matches_go(text: str, nanos: float) -> None:
    """goparse.parse_duration against Go's time.ParseDuration test table."""
    assert goparse.parse_duration(text) == nanos


@pytest.mark.parametrize("text", ["", "3", "-", "s", ".", "-.", ".s", "+.s", "1d", "1.5"])
def test_parse_duration_refuses_what_go_refuses(text: str) -> None:
    """time.ParseDuration's error cases (time/time_test.go parseDurationErrorTests)."""
    with pytest.raises(ValueError):
        goparse.parse_duration(text)


def test_parse_int32_matches_go() -> None:
    """strconv.ParseInt(s, 10, 32) (strconv/atoi_test.go parseInt32Tests)."""
    assert goparse.parse_int("2147483647", 32) == 2147483647
    assert goparse.parse_int("-2147483648", 32) == -2147483648
    for bad in ("", "12345x", "1_2", " 1", "0x10"):
        with pytest.raises(ValueError):
            goparse.parse_int(bad, 32)
    with pytest.raises(OverflowError):
        goparse.parse_int("2147483648", 32)


@pytest.mark.parametrize("source", list(SOURCES))
def test_defaulted_services_fit_the_crd(source: str) -> None:
    """The mirrored SetDefaults output (what the validating webhook and then the API server
    see) still fits the Service CRD's strict schema: the mirror adds no field Knative lacks."""
    if not k8s.CRDS.is_dir():
        pytest.skip(k8s.CRDS_ABSENT)
    errors = [e for svc in services(source) for e in k8s.crd_errors(defaulted(svc))]
    k8s.fail_on(errors, f"{source}: defaulted Services outside the CRD")


# A values assignment and the same change made by hand on the rendered Service (what the
# template would render if nothing refused the value): Knative's verdict on the latter is the
# mirror's, independent of the chart's schema and checks.
KNOBS: dict[str, tuple[str, ...]] = {
    "scale-down-delay 0s": ("resize.scaleDownDelay=0s",),
    "scale-down-delay 1h": ("resize.scaleDownDelay=1h",),
    "scale-down-delay 1m30s": ("resize.scaleDownDelay=1m30s",),
    "scale-down-delay 1500ms": ("resize.scaleDownDelay=1500ms",),
    "scale-down-delay 0.5s": ("resize.scaleDownDelay=0.5s",),
    "scale-down-delay 61m": ("resize.scaleDownDelay=61m",),
    "scale-down-delay 2h": ("resize.scaleDownDelay=2h",),
    "scale-down-delay 1h30s": ("resize.scaleDownDelay=1h30s",),
    "containerConcurrency 1000": ("upload.workers=10", "upload.threads=100"),
    "containerConcurrency 1600": ("upload.workers=40", "upload.threads=40"),
    "max-scale past int32": ("upload.maxScale=2147483648",),
    "min-scale past int32": ("status.minScale=2147483648", "status.maxScale=0"),
    "timeoutSeconds 600": ("status.timeoutSeconds=600",),
    "timeoutSeconds 601": ("status.timeoutSeconds=601",),
}


def _by_hand(sets: tuple[str, ...]) -> list[Obj]:
    """The default render with the assignments applied to the Services by hand."""
    objects = k8s.render_chart(None)
    for assignment in sets:
        path, _, raw = assignment.partition("=")
        fn, key = path.split(".")
        svc = next(s for s in k8s.ksvcs(objects) if s["metadata"]["name"] == fn)
        spec, annotations = template_spec(svc), svc["spec"]["template"]["metadata"]["annotations"]
        if key == "scaleDownDelay":
            annotations[autoscaling.SCALE_DOWN_DELAY[0]] = raw
        elif key in ("minScale", "maxScale"):
            annotations[(autoscaling.MIN_SCALE if key == "minScale" else
                         autoscaling.MAX_SCALE)[0]] = raw
        elif key == "timeoutSeconds":
            spec["timeoutSeconds"] = int(raw)
        elif key in ("workers", "threads"):
            args = container(svc)["args"]
            args[args.index(f"--{key}") + 1] = raw
            workers, threads = (int(args[args.index(f"--{k}") + 1]) for k in ("workers",
                                                                                "threads"))
            spec["containerConcurrency"] = workers * threads
        else:
            raise KeyError(assignment)
    return objects


@pytest.mark.parametrize("knob", list(KNOBS))
def test_values_the_chart_accepts_are_ones_knative_admits(knob: str) -> None:
    """The values schema and the chart's checks against the mirrored webhook
    (autoscaling.validateScaleDownDelay, validateMinMaxScale,
    serving.ValidateContainerConcurrency, v1.validateTimeoutSeconds): a value the chart
    renders must give Services Knative admits; a value Knative refuses must fail the render
    (helm's error, not the webhook's, at install time)."""
    sets = KNOBS[knob]
    knative = [str(e) for svc in k8s.ksvcs(_by_hand(sets))
               for e in errors_only(serving.admit_service(svc)[1])]
    helm = k8s.helm_template(None, sets=sets, check=False)
    if helm.returncode == 0:
        rendered = [str(e) for svc in k8s.ksvcs(list(k8s.documents(helm.stdout)))
                    for e in errors_only(serving.admit_service(svc)[1])]
        assert not rendered, f"the chart renders {sets} and Knative refuses it: {rendered}"
        assert not knative, knative  # the hand-made copy agrees with the template
    else:
        assert knative, f"the chart refuses {sets}, which Knative admits:\n{helm.stderr}"

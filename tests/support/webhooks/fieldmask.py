"""knative.dev/serving/pkg/apis/serving fieldmask.go, mirrored: the fields a Revision
template's pod spec may set (the *Mask functions), some behind config-features flags.

Source: knative/serving tag knative-v1.23.0, pkg/apis/serving/fieldmask.go. Each mask is the
set of JSON field names Go's *Mask copies over; apis.CheckDisallowedFields
(webhooks.pkg_apis.check_disallowed_fields) refuses the others.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tests.support.webhooks.config import ALLOW_ROOT_BOUNDED, DISABLED, ENABLED, Config

Obj = Mapping[str, Any]


# PodSpecMask: always kept, and kept when a flag is not Disabled.
POD_SPEC_FIELDS = frozenset({"serviceAccountName", "containers", "volumes", "imagePullSecrets",
                             "enableServiceLinks"})
POD_SPEC_FLAGGED = {
    "affinity": "kubernetes.podspec-affinity",
    "topologySpreadConstraints": "kubernetes.podspec-topologyspreadconstraints",
    "hostAliases": "kubernetes.podspec-hostaliases",
    "nodeSelector": "kubernetes.podspec-nodeselector",
    "runtimeClassName": "kubernetes.podspec-runtimeclassname",
    "tolerations": "kubernetes.podspec-tolerations",
    "shareProcessNamespace": "kubernetes.podspec-shareprocessnamespace",
    "priorityClassName": "kubernetes.podspec-priorityclassname",
    "schedulerName": "kubernetes.podspec-schedulername",
    "initContainers": "kubernetes.podspec-init-containers",
    "dnsPolicy": "kubernetes.podspec-dnspolicy",
    "dnsConfig": "kubernetes.podspec-dnsconfig",
    "hostIPC": "kubernetes.podspec-hostipc",
    "hostPID": "kubernetes.podspec-hostpid",
    "hostNetwork": "kubernetes.podspec-hostnetwork",
}
CONTAINER_FIELDS = frozenset({
    "name", "args", "command", "env", "workingDir", "envFrom", "image", "imagePullPolicy",
    "livenessProbe", "ports", "readinessProbe", "resources", "securityContext", "startupProbe",
    "terminationMessagePath", "terminationMessagePolicy", "volumeMounts"})
PROBE_FIELDS = frozenset({"httpGet", "tcpSocket", "exec", "grpc", "initialDelaySeconds",
                          "timeoutSeconds", "periodSeconds", "successThreshold",
                          "failureThreshold", "terminationGracePeriodSeconds"})
HTTP_GET_FIELDS = frozenset({"host", "path", "scheme", "httpHeaders", "port"})
TCP_SOCKET_FIELDS = frozenset({"host", "port"})
EXEC_FIELDS = frozenset({"command"})
GRPC_FIELDS = frozenset({"port", "service"})
CONTAINER_PORT_FIELDS = frozenset({"containerPort", "name", "protocol"})
ENV_VAR_FIELDS = frozenset({"name", "value", "valueFrom"})
ENV_FROM_FIELDS = frozenset({"prefix", "configMapRef", "secretRef"})
ENV_SOURCE_REF_FIELDS = frozenset({"name", "optional"})  # Secret/ConfigMapEnvSourceMask
RESOURCE_FIELDS = frozenset({"limits", "requests"})
SECURITY_CONTEXT_FIELDS = frozenset({
    "capabilities", "readOnlyRootFilesystem", "runAsUser", "runAsGroup", "runAsNonRoot",
    "allowPrivilegeEscalation", "seccompProfile"})
POD_SECURITY_CONTEXT_FIELDS = frozenset({"runAsUser", "runAsGroup", "runAsNonRoot", "fsGroup",
                                         "supplementalGroups", "seccompProfile"})
VOLUME_SOURCES_ALWAYS = frozenset({"secret", "configMap", "projected"})
VOLUME_SOURCES_FLAGGED = {
    "emptyDir": "kubernetes.podspec-volumes-emptydir",
    "persistentVolumeClaim": "kubernetes.podspec-persistent-volume-claim",
    "hostPath": "kubernetes.podspec-volumes-hostpath",
    "csi": "kubernetes.podspec-volumes-csi",
    "ephemeral": "kubernetes.podspec-volumes-ephemeral",
    "image": "kubernetes.podspec-volumes-image",
}
KEY_TO_PATH_FIELDS = frozenset({"key", "path", "mode"})


def secure_pod_defaults_on(cfg: Config) -> bool:
    """secure-pod-defaults is Enabled or AllowRootBounded."""
    return cfg.flag("secure-pod-defaults") in (ENABLED, ALLOW_ROOT_BOUNDED)


def pod_spec_mask(cfg: Config, ps: Obj) -> set[str]:
    """PodSpecMask: the pod spec fields kept (automountServiceAccountToken only when false)."""
    kept = set(POD_SPEC_FIELDS)
    kept |= {f for f, flag in POD_SPEC_FLAGGED.items() if cfg.flag(flag) != DISABLED}
    if ps.get("automountServiceAccountToken") is False:
        kept.add("automountServiceAccountToken")
    if cfg.flag("kubernetes.podspec-securitycontext") != DISABLED \
            or cfg.flag("secure-pod-defaults") != DISABLED:
        kept.add("securityContext")
    return kept


def security_context_mask(sc: Obj) -> set[str]:
    """SecurityContextMask (privileged only when false)."""
    return set(SECURITY_CONTEXT_FIELDS) | ({"privileged"} if sc.get("privileged") is False
                                           else set())


def capabilities_mask(cfg: Config, cap: Obj) -> set[str]:
    """CapabilitiesMask: drop; add behind kubernetes.containerspec-addcapabilities (or
    exactly [NET_BIND_SERVICE] under secure-pod-defaults)."""
    if cfg.flag("kubernetes.containerspec-addcapabilities") == ENABLED:
        return {"drop", "add"}
    if secure_pod_defaults_on(cfg) and cap.get("add") == ["NET_BIND_SERVICE"]:
        return {"drop", "add"}
    return {"drop"}


def pod_security_context_mask(cfg: Config, sc: Obj) -> set[str]:
    """PodSecurityContextMask: nothing unless kubernetes.podspec-securitycontext (a
    RuntimeDefault/Unconfined seccompProfile under secure-pod-defaults)."""
    kept: set[str] = set()
    if secure_pod_defaults_on(cfg) and (sc.get("seccompProfile") or {}).get("type") in (
            "RuntimeDefault", "Unconfined"):
        kept.add("seccompProfile")
    if cfg.flag("kubernetes.podspec-securitycontext") == DISABLED:
        return kept
    return kept | POD_SECURITY_CONTEXT_FIELDS


def volume_source_mask(cfg: Config) -> set[str]:
    """VolumeSourceMask: secret, configMap, projected; the rest behind flags."""
    return set(VOLUME_SOURCES_ALWAYS) | {
        f for f, flag in VOLUME_SOURCES_FLAGGED.items() if cfg.flag(flag) != DISABLED}


def env_var_source_mask(cfg: Config) -> set[str]:
    """EnvVarSourceMask: key refs; fieldRef/resourceFieldRef behind kubernetes.podspec-fieldref."""
    kept = {"configMapKeyRef", "secretKeyRef"}
    if cfg.flag("kubernetes.podspec-fieldref") != DISABLED:
        kept |= {"fieldRef", "resourceFieldRef"}
    return kept


def volume_mount_mask(cfg: Config) -> set[str]:
    """VolumeMountMask: mountPropagation behind kubernetes.podspec-volumes-mount-propagation."""
    kept = {"name", "readOnly", "mountPath", "subPath"}
    if cfg.flag("kubernetes.podspec-volumes-mount-propagation") != DISABLED:
        kept.add("mountPropagation")
    return kept

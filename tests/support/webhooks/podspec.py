"""knative.dev/serving/pkg/apis/serving k8s_validation.go, mirrored: what Knative Serving's
webhook admits in a Revision template's pod spec.

Source: knative/serving tag knative-v1.23.0, pkg/apis/serving/k8s_validation.go (the rules;
the masks it applies are in webhooks.fieldmask). One function per Go function, named after it
in snake_case; objects are the JSON/YAML dicts of the manifests; each returns a list of
FieldError (str).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from typing import Any

from tests.support.webhooks import goparse
from tests.support.webhooks.config import ENABLED, Config
from tests.support.webhooks.fieldmask import (
    CONTAINER_FIELDS,
    CONTAINER_PORT_FIELDS,
    ENV_FROM_FIELDS,
    ENV_SOURCE_REF_FIELDS,
    ENV_VAR_FIELDS,
    EXEC_FIELDS,
    GRPC_FIELDS,
    HTTP_GET_FIELDS,
    KEY_TO_PATH_FIELDS,
    PROBE_FIELDS,
    RESOURCE_FIELDS,
    TCP_SOCKET_FIELDS,
    VOLUME_SOURCES_FLAGGED,
    capabilities_mask,
    env_var_source_mask,
    pod_security_context_mask,
    pod_spec_mask,
    secure_pod_defaults_on,
    security_context_mask,
    volume_mount_mask,
    volume_source_mask,
)
from tests.support.webhooks.pkg_apis import (
    CURRENT_FIELD,
    FieldError,
    check_disallowed_fields,
    err_generic,
    err_invalid_value,
    err_missing_field,
    err_missing_one_of,
    err_multiple_one_of,
    err_out_of_bounds,
    via,
)

Obj = Mapping[str, Any]
MAX_ID = goparse.INT32_MAX  # minUserID/maxUserID, minGroupID/maxGroupID
RESERVED_PATHS = frozenset({"/", "/dev", "/dev/log"})
RESERVED_CONTAINER_NAMES = frozenset({"queue-proxy"})
RESERVED_ENV_VARS = frozenset({"PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION"})
RESERVED_SIDECAR_ENV_VARS = RESERVED_ENV_VARS - {"PORT"}
# networking.BackendHTTPPort, BackendHTTP2Port, QueueAdminPort, AutoscalingQueueMetricsPort,
# UserQueueMetricsPort (pkg/networking/constants.go) and knative.dev/pkg's
# runtime.ProfilingDefaultPort.
RESERVED_PORTS = frozenset({8012, 8013, 8022, 9090, 9091, 8008})
VALID_PORT_NAMES = frozenset({"h2c", "http1", ""})
# RevisionSpec's own fields, inlined beside the PodSpec's in JSON; PodSpecMask never sees them.
REVISION_SPEC_FIELDS = frozenset({"containerConcurrency", "timeoutSeconds",
                                  "responseStartTimeoutSeconds", "idleTimeoutSeconds"})

# ---------------------------------------------------------------- k8s_validation.go


def validate_pod_spec(cfg: Config, ps: Obj) -> list[FieldError]:
    """ValidatePodSpec: a Revision template's pod spec (RevisionSpec's own fields apart)."""
    pod = {k: v for k, v in ps.items() if k not in REVISION_SPEC_FIELDS}
    errs = check_disallowed_fields(pod, pod_spec_mask(cfg, pod))
    psc = pod.get("securityContext")
    errs += via("securityContext", validate_pod_security_context(cfg, psc))
    containers: list[Obj] = pod.get("containers") or []
    init_containers: list[Obj] = pod.get("initContainers") or []
    for kind, group in (("containers", containers), ("initContainers", init_containers)):
        for i, c in enumerate(group):
            errs += via(f"{kind}[{i}].securityContext", warn_default_container_security_context(
                cfg, psc, c.get("securityContext")))
    volumes, more = validate_volumes(cfg, pod.get("volumes") or [],
                                     all_mounted_volumes([*init_containers, *containers]))
    errs += via("volumes", more)
    errs += validate_init_containers(cfg, init_containers, containers, volumes)
    port, more = validate_containers_ports(containers)
    errs += via("containers[*]", more)
    if not containers:
        errs.append(err_missing_field("containers"))
    elif len(containers) == 1:
        errs += via("containers[0]", validate_user_container(cfg, containers[0], volumes, port))
    else:
        errs += validate_containers(cfg, containers, volumes, port)
    account = str(pod.get("serviceAccountName") or "")
    if account:
        errs += [err_invalid_value(account, "serviceAccountName", msg)
                 for msg in goparse.is_dns1123_subdomain(account)]
    return errs


def all_mounted_volumes(containers: Sequence[Obj]) -> set[str]:
    """AllMountedVolumes: the names every container's volumeMounts use."""
    return {m.get("name") for c in containers for m in c.get("volumeMounts") or []}


def validate_volumes(cfg: Config, vs: Sequence[Obj],
                     mounted: set[str]) -> tuple[dict[str, Obj], list[FieldError]]:
    """ValidateVolumes: unique, mounted, valid volumes; returns them by name."""
    volumes: dict[str, Obj] = {}
    errs: list[FieldError] = []
    for i, volume in enumerate(vs):
        name = volume.get("name")
        if name in volumes:
            errs.append(FieldError(f'duplicate volume name "{name}"', ["name"]).via(f"[{i}]"))
        if name not in mounted:
            errs.append(FieldError(f'volume with name "{name}" not mounted', ["name"])
                        .via(f"[{i}]"))
        errs += via(f"[{i}]", validate_volume(cfg, volume))
        volumes[str(name)] = volume
    return volumes, errs


def validate_persistent_volume_claims(cfg: Config, volume: Obj) -> list[FieldError]:
    """validatePersistentVolumeClaims: PVCs behind two flags (claim, write)."""
    pvc = volume.get("persistentVolumeClaim")
    if pvc is None:
        return []
    errs = []
    claim = pvc.get("claimName")
    if cfg.flag("kubernetes.podspec-persistent-volume-claim") != ENABLED:
        errs.append(FieldError("Persistent volume claim support is disabled, but found "
                               f"persistent volume claim {claim}"))
    if not pvc.get("readOnly") and cfg.flag("kubernetes.podspec-persistent-volume-write") \
            != ENABLED:
        errs.append(FieldError("Persistent volume write support is disabled, but found "
                               f"persistent volume claim {claim} that is not read-only"))
    return errs


_VOLUME_KIND_NAMES = {"image": "Image", "emptyDir": "EmptyDir", "hostPath": "HostPath",
                      "csi": "CSI", "ephemeral": "Ephemeral"}


def validate_volume(cfg: Config, volume: Obj) -> list[FieldError]:
    """validateVolume: flags of each source, a DNS-1123 name, exactly one source."""
    errs = validate_persistent_volume_claims(cfg, volume)
    for source, kind in _VOLUME_KIND_NAMES.items():
        if volume.get(source) is not None and cfg.flag(VOLUME_SOURCES_FLAGGED[source]) != ENABLED:
            errs.append(FieldError(f"{kind} volume support is disabled, but found {kind} "
                                   f"volume {volume.get('name')}"))
    errs += check_disallowed_fields(volume, {"name"} | volume_source_mask(cfg))
    name = str(volume.get("name") or "")
    if not name:
        errs = [err_missing_field("name")]  # Go assigns here, dropping earlier errors
    elif goparse.is_dns1123_label(name):
        errs = [err_invalid_value(name, "name")]
    specified = [s for s in ("secret", "configMap", "projected", "emptyDir",
                             "persistentVolumeClaim", "hostPath", "csi", "ephemeral", "image")
                 if volume.get(s) is not None]
    for source in ("secret", "configMap"):
        for i, item in enumerate((volume.get(source) or {}).get("items") or []):
            errs += via(f"items[{i}]", validate_key_to_path(item))
    for i, proj in enumerate((volume.get("projected") or {}).get("sources") or []):
        errs += via(f"projected[{i}]", validate_projected_volume_source(proj))
    if volume.get("emptyDir") is not None:
        errs += via("emptyDir", validate_empty_dir_fields(volume["emptyDir"]))
    if not specified:
        paths = ["secret", "configMap", "projected"] + [
            s for s, flag in VOLUME_SOURCES_FLAGGED.items() if cfg.flag(flag) == ENABLED]
        errs.append(err_missing_one_of(*paths))
    elif len(specified) > 1:
        errs.append(err_multiple_one_of(*specified))
    return errs


def validate_projected_volume_source(vp: Obj) -> list[FieldError]:
    """validateProjectedVolumeSource: exactly one of secret, configMap, serviceAccountToken,
    downwardAPI (their items as validateKeyToPath)."""
    kinds = ("secret", "configMap", "serviceAccountToken", "downwardAPI")
    errs = check_disallowed_fields(vp, kinds)
    specified = [k for k in kinds if vp.get(k) is not None]
    for kind in ("secret", "configMap"):
        if vp.get(kind) is not None:
            if not vp[kind].get("name"):
                errs.append(err_missing_field(f"{kind}.name"))
            for i, item in enumerate(vp[kind].get("items") or []):
                errs += via(f"{kind}.items[{i}]", validate_key_to_path(item))
    if vp.get("serviceAccountToken") is not None and not vp["serviceAccountToken"].get("path"):
        errs.append(err_missing_field("serviceAccountToken.path"))
    if not specified:
        errs.append(err_missing_one_of(*kinds))
    elif len(specified) > 1:
        errs.append(err_multiple_one_of(*specified))
    return errs


def validate_key_to_path(k2p: Obj) -> list[FieldError]:
    """validateKeyToPath: key and path are required."""
    errs = check_disallowed_fields(k2p, KEY_TO_PATH_FIELDS)
    errs += [err_missing_field(f) for f in ("key", "path") if not k2p.get(f)]
    return errs


def validate_empty_dir_fields(empty_dir: Obj) -> list[FieldError]:
    """validateEmptyDirFields: medium "" or Memory; sizeLimit not negative."""
    errs = []
    medium = empty_dir.get("medium") or ""
    if medium not in ("", "Memory"):
        errs.append(err_invalid_value(medium, "medium"))
    size = str(empty_dir.get("sizeLimit") or "")
    if size.startswith("-"):
        errs.append(err_invalid_value(size, "sizeLimit"))
    return errs


def validate_env_value_from(cfg: Config, source: Obj | None) -> list[FieldError]:
    """validateEnvValueFrom: EnvVarSourceMask (fieldRef behind a flag)."""
    if source is None:
        return []
    return check_disallowed_fields(source, env_var_source_mask(cfg))


def validate_env_var(cfg: Config, env: Obj, sidecar_or_init: bool = False) -> list[FieldError]:
    """validateEnvVar: a name that Knative does not reserve (getReservedEnvVarsPerContainerType)."""
    errs = check_disallowed_fields(env, ENV_VAR_FIELDS)
    name = env.get("name") or ""
    reserved = RESERVED_SIDECAR_ENV_VARS if sidecar_or_init else RESERVED_ENV_VARS
    if not name:
        errs.append(err_missing_field("name"))
    elif name in reserved:
        errs.append(FieldError(f'"{name}" is a reserved environment variable', ["name"]))
    return errs + via("valueFrom", validate_env_value_from(cfg, env.get("valueFrom")))


def validate_env(cfg: Config, env_vars: Sequence[Obj],
                 sidecar_or_init: bool = False) -> list[FieldError]:
    """validateEnv."""
    return [e for i, env in enumerate(env_vars)
            for e in via(f"[{i}]", validate_env_var(cfg, env, sidecar_or_init))]


def validate_env_from(env_from: Sequence[Obj]) -> list[FieldError]:
    """validateEnvFrom: exactly one of configMapRef and secretRef, each {name, optional}."""
    errs: list[FieldError] = []
    for i, source in enumerate(env_from):
        errs += via(f"[{i}]", check_disallowed_fields(source, ENV_FROM_FIELDS))
        for ref in ("secretRef", "configMapRef"):
            if source.get(ref) is not None:
                errs += via(f"[{i}].{ref}",
                            check_disallowed_fields(source[ref], ENV_SOURCE_REF_FIELDS))
        cm, sm = source.get("configMapRef"), source.get("secretRef")
        if cm is not None and sm is not None:
            errs.append(err_multiple_one_of("configMapRef", "secretRef"))
        elif cm is None and sm is None:
            errs.append(err_missing_one_of("configMapRef", "secretRef"))
    return errs


def validate_init_containers(cfg: Config, containers: Sequence[Obj], others: Sequence[Obj],
                             volumes: Mapping[str, Obj]) -> list[FieldError]:
    """validateInitContainers: behind kubernetes.podspec-init-containers; unique names."""
    if not containers:
        return []
    if cfg.flag("kubernetes.podspec-init-containers") != ENABLED:
        return [FieldError("pod spec support for init-containers is off, but found "
                           f"{len(containers)} init containers")]
    names = {c.get("name") for c in others}
    errs: list[FieldError] = []
    for i, c in enumerate(containers):
        if c.get("name") in names:
            errs.append(FieldError(f'duplicate container name "{c.get("name")}"', ["name"])
                        .via(f"containers[{i}]"))
        errs += via(f"containers[{i}]", validate_init_container(cfg, c, volumes))
    return errs


def validate_containers(cfg: Config, containers: Sequence[Obj], volumes: Mapping[str, Obj],
                        port: Obj) -> list[FieldError]:
    """validateContainers: several containers (multi-container); the one with a port serves."""
    if cfg.flag("multi-container") != ENABLED:
        return [FieldError(f"multi-container is off, but found {len(containers)} containers")]
    seen: set[Any] = set()
    errs: list[FieldError] = []
    for i, c in enumerate(containers):
        if c.get("name") in seen:
            errs.append(FieldError(f'duplicate container name "{c.get("name")}"', ["name"])
                        .via(f"containers[{i}]"))
        seen.add(c.get("name"))
        if c.get("ports"):
            errs += via(f"containers[{i}]", validate_user_container(cfg, c, volumes, port))
        else:
            errs += via(f"containers[{i}]", validate_sidecar_container(cfg, c, volumes))
    return errs


def validate_containers_ports(containers: Sequence[Obj]) -> tuple[Obj, list[FieldError]]:
    """validateContainersPorts: one port across all containers; the serving port (name
    "http" and 8080 when unset)."""
    count = 0
    port: dict[str, Any] = {}
    for c in containers:
        if c.get("ports"):
            count += len(c["ports"])
            port = dict(c["ports"][0])
    port["name"] = port.get("name") or "http"
    port["containerPort"] = port.get("containerPort") or 8080
    if count == 0 and len(containers) > 1:
        return port, [err_missing_field("ports")]
    if count > 1:
        return port, [FieldError("more than one container port is set", ["ports"],
                                 "Only a single port is allowed across all containers")]
    return port, []


def validate_sidecar_container(cfg: Config, container: Obj,
                               volumes: Mapping[str, Obj]) -> list[FieldError]:
    """validateSidecarContainer: no probes unless multi-container-probing."""
    errs: list[FieldError] = []
    probes = (("livenessProbe", validate_probe), ("readinessProbe", validate_readiness_probe),
              ("startupProbe", validate_probe))
    for field, check in probes:
        probe = container.get(field)
        if probe is None:
            continue
        if cfg.flag("multi-container-probing") != ENABLED:
            errs += via(field, check_disallowed_fields(probe, ()))
        else:
            errs += via(field, check(probe, None, False))
    return errs + validate(cfg, container, volumes, "sidecar")


def validate_init_container(cfg: Config, container: Obj,
                            volumes: Mapping[str, Obj]) -> list[FieldError]:
    """validateInitContainer: no probes, no lifecycle."""
    errs = [FieldError("field not allowed in an init container", [f])
            for f in ("livenessProbe", "readinessProbe", "startupProbe", "lifecycle")
            if container.get(f) is not None]
    return errs + validate(cfg, container, volumes, "init")


def validate_user_container(cfg: Config, container: Obj, volumes: Mapping[str, Obj],
                            port: Obj) -> list[FieldError]:
    """ValidateUserContainer: the serving container's probes, then validate."""
    return [*via("livenessProbe", validate_probe(container.get("livenessProbe"), port, True)),
            *via("readinessProbe",
                 validate_readiness_probe(container.get("readinessProbe"), port, True)),
            *via("startupProbe", validate_probe(container.get("startupProbe"), port, True)),
            *validate(cfg, container, volumes, "user")]


def validate(cfg: Config, container: Obj, volumes: Mapping[str, Obj],
             kind: str = "user") -> list[FieldError]:
    """validate: one container's fields (kind: "user", "sidecar" or "init")."""
    if not container:
        return [err_missing_field(CURRENT_FIELD)]
    errs = check_disallowed_fields(container, CONTAINER_FIELDS)
    name = container.get("name")
    if name in RESERVED_CONTAINER_NAMES:
        errs.append(FieldError(f'"{name}" is a reserved container name', ["name"]))
    errs += via("env", validate_env(cfg, container.get("env") or [], kind != "user"))
    errs += via("envFrom", validate_env_from(container.get("envFrom") or []))
    image = str(container.get("image") or "")
    if not image:
        errs.append(err_missing_field("image"))
    elif (problem := parse_reference(image)) is not None:
        errs.append(FieldError("Failed to parse image reference", ["image"],
                               f'image: "{image}", error: {problem}'))
    ports = container.get("ports") or []
    if kind == "init":
        errs += via("ports", validate_init_container_ports(ports))
    else:
        errs += via("ports", validate_container_ports(ports))
    errs += via("resources", validate_resources(container.get("resources")))
    errs += via("securityContext", validate_security_context(cfg, container.get("securityContext")))
    policy = container.get("terminationMessagePolicy") or ""
    if policy not in ("File", "FallbackToLogsOnError", ""):
        errs.append(err_invalid_value(policy, "terminationMessagePolicy"))
    errs += via("volumeMounts", validate_volume_mounts(cfg, container.get("volumeMounts") or [],
                                                       volumes))
    return errs


# go-containerregistry pkg/name (name.ParseReference with name.WeakValidation): a
# repository of [a-z0-9_-./] with an optional registry, then :tag and/or @sha256:<hex>.
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_REPOSITORY_CHARS = re.compile(r"[a-z0-9_\-./]+")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def parse_reference(image: str) -> str | None:
    """name.ParseReference(image, name.WeakValidation): None when it parses, else Go's error
    text (it reports every failure as "could not parse reference")."""
    base, at, digest = image.partition("@")
    repo, tag = base, ""
    head, colon, tail = base.rpartition(":")
    if colon and "/" not in tail:
        repo, tag = head, tail
    first, slash, rest = repo.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        repo = rest  # the registry: host[:port]
    if (at and not _DIGEST.fullmatch(digest)) or (tag and not _TAG.fullmatch(tag)) \
            or not repo or not _REPOSITORY_CHARS.fullmatch(repo):
        return f"could not parse reference: {image}"
    return None


def validate_resources(resources: Obj | None) -> list[FieldError]:
    """validateResources: limits and requests only (no claims)."""
    return [] if resources is None else check_disallowed_fields(resources, RESOURCE_FIELDS)


def validate_capabilities(cfg: Config, cap: Obj | None) -> list[FieldError]:
    """validateCapabilities: CapabilitiesMask."""
    return [] if cap is None else check_disallowed_fields(cap, capabilities_mask(cfg, cap))


def validate_security_context(cfg: Config, sc: Obj | None) -> list[FieldError]:
    """validateSecurityContext: SecurityContextMask, capabilities, uid/gid in [0, MaxInt32]."""
    if sc is None:
        return []
    errs = check_disallowed_fields(sc, security_context_mask(sc))
    errs += via("capabilities", validate_capabilities(cfg, sc.get("capabilities")))
    for field in ("runAsUser", "runAsGroup"):
        value = sc.get(field)
        if value is not None and not 0 <= int(value) <= MAX_ID:
            errs.append(err_out_of_bounds(value, 0, MAX_ID, field))
    return errs


def validate_pod_security_context(cfg: Config, sc: Obj | None) -> list[FieldError]:
    """ValidatePodSecurityContext: PodSecurityContextMask; ids in [0, MaxInt32]."""
    if sc is None:
        return []
    errs = check_disallowed_fields(sc, pod_security_context_mask(cfg, sc))
    for field in ("runAsUser", "runAsGroup", "fsGroup"):
        value = sc.get(field)
        if value is not None and not 0 <= int(value) <= MAX_ID:
            errs.append(err_out_of_bounds(value, 0, MAX_ID, field))
    for i, gid in enumerate(sc.get("supplementalGroups") or []):
        if not 0 <= int(gid) <= MAX_ID:
            errs.append(err_out_of_bounds(gid, 0, MAX_ID, "").via(f"supplementalGroups[{i}]"))
    return errs


def warn_default_container_security_context(cfg: Config, psc: Obj | None,
                                            sc: Obj | None) -> list[FieldError]:
    """warnDefaultContainerSecurityContext: warnings (not refusals) for insecure defaults
    left unset, unless secure-pod-defaults is on."""
    sc, psc = sc or {}, psc or {}
    if secure_pod_defaults_on(cfg):
        return []

    def insecure(path: str) -> FieldError:
        return err_generic("Kubernetes default value is insecure, Knative may default this to "
                           "secure in a future release", path).at_warning()

    errs = []
    if psc.get("runAsNonRoot") is None and sc.get("runAsNonRoot") is None:
        errs.append(insecure("runAsNonRoot"))
    if sc.get("allowPrivilegeEscalation") is None:
        errs.append(insecure("allowPrivilegeEscalation"))
    if sc.get("seccompProfile") is None and psc.get("seccompProfile") is None:
        errs.append(insecure("seccompProfile"))
    elif not (psc.get("seccompProfile") or {}).get("type") \
            and not (sc.get("seccompProfile") or {}).get("type"):
        errs.append(insecure("seccompProfile.type"))
    caps = sc.get("capabilities")
    if caps is None:
        errs.append(insecure("capabilities"))
    elif caps.get("drop") is None:
        errs.append(insecure("capabilities.drop"))
    elif caps["drop"] and caps["drop"][0] == "all":
        errs.append(err_invalid_value("all", "capabilities.drop", "Must be spelled as 'ALL'")
                    .at_warning())
    return errs


def _clean(path: str) -> str:
    """Go's path.Clean."""
    cleaned = posixpath.normpath(path) if path else "."
    return "/" + cleaned.lstrip("/") if cleaned.startswith("//") else cleaned


def validate_volume_mounts(cfg: Config, mounts: Sequence[Obj],
                           volumes: Mapping[str, Obj]) -> list[FieldError]:
    """validateVolumeMounts: each mount names a volume, at a unique absolute path that is
    not reserved, read-only unless the volume is emptyDir/PVC/ephemeral."""
    errs: list[FieldError] = []
    seen_paths: set[str] = set()
    for i, vm in enumerate(mounts):
        at = f"[{i}]"
        errs += via(at, check_disallowed_fields(vm, volume_mount_mask(cfg)))
        name = vm.get("name")
        if name not in volumes:
            errs.append(FieldError("volumeMount has no matching volume", ["name"]).via(at))
        mount_path = str(vm.get("mountPath") or "")
        clean = _clean(mount_path)
        if not mount_path:
            errs.append(err_missing_field("mountPath").via(at))
        elif clean in RESERVED_PATHS:
            errs.append(FieldError(f'mountPath "{clean}" is a reserved path', ["mountPath"])
                        .via(at))
        elif not mount_path.startswith("/"):
            errs.append(err_invalid_value(mount_path, "mountPath").via(at))
        elif clean in seen_paths:
            errs.append(err_invalid_value(f'"{mount_path}" must be unique', "mountPath").via(at))
        seen_paths.add(clean)
        volume = volumes.get(str(name)) or {}
        writable_kind = any(volume.get(k) is not None
                            for k in ("emptyDir", "persistentVolumeClaim", "ephemeral"))
        if not writable_kind and not vm.get("readOnly"):
            errs.append(FieldError("volume mount should be readOnly for this type of volume",
                                   ["readOnly"]).via(at))
        propagation = vm.get("mountPropagation")
        if propagation is not None:
            if cfg.flag("kubernetes.podspec-volumes-mount-propagation") != ENABLED:
                errs.append(FieldError("Volume Mount Propagation support is disabled, but found "
                                       f"volume mount {name} with mount propagation").via(at))
            if propagation not in ("None", "HostToContainer"):
                errs.append(FieldError("mount propagation should be set to None or "
                                       "HostToContainer", ["mountPropagation"]).via(at))
        pvc = volume.get("persistentVolumeClaim")
        if pvc is not None and pvc.get("readOnly") and not vm.get("readOnly"):
            errs.append(FieldError("volume is readOnly but volume mount is not", ["readOnly"])
                        .via(at))
    return errs


def validate_container_ports(ports: Sequence[Obj]) -> list[FieldError]:
    """validateContainerPorts: the serving port (the first): basic checks, TCP, a name of
    "", h2c or http1."""
    if not ports:
        return []
    user_port = ports[0]
    errs = validate_container_port_basic(user_port)
    protocol = user_port.get("protocol") or ""
    if protocol not in ("", "TCP"):
        errs.append(err_invalid_value(protocol, "protocol"))
    name = user_port.get("name") or ""
    if name not in VALID_PORT_NAMES:
        errs.append(FieldError(f"Port name {name} is not allowed", [CURRENT_FIELD],
                               "Name must be empty, or one of: 'h2c', 'http1'"))
    return errs


def validate_init_container_ports(ports: Sequence[Obj]) -> list[FieldError]:
    """validateInitContainerPorts."""
    return [e for p in ports for e in validate_container_port_basic(p)]


def validate_container_port_basic(port: Obj) -> list[FieldError]:
    """validateContainerPortBasic: not a port Knative reserves, in [0, 65535]."""
    errs = check_disallowed_fields(port, CONTAINER_PORT_FIELDS)
    number = int(port.get("containerPort") or 0)
    if number in RESERVED_PORTS:
        errs.append(err_invalid_value(f"{number} is a reserved port", "containerPort",
                                      f"{number} is a reserved port, please use a different "
                                      "value"))
    if not 0 <= number <= 65535:
        errs.append(err_out_of_bounds(number, 0, 65535, "containerPort"))
    return errs


def validate_readiness_probe(p: Obj | None, port: Obj | None,
                             is_user_container: bool) -> list[FieldError]:
    """validateReadinessProbe: validateProbe, bounds, and periodSeconds 0 (Knative's
    aggressive probing until the first success) forbids failureThreshold and timeoutSeconds."""
    if p is None:
        return []
    errs = validate_probe(p, port, is_user_container)
    period = int(p.get("periodSeconds") or 0)
    timeout = int(p.get("timeoutSeconds") or 0)
    failure = int(p.get("failureThreshold") or 0)
    if period < 0:
        errs.append(err_out_of_bounds(period, 0, MAX_ID, "periodSeconds"))
    initial = int(p.get("initialDelaySeconds") or 0)
    if initial < 0:
        errs.append(err_out_of_bounds(initial, 0, MAX_ID, "initialDelaySeconds"))
    success = int(p.get("successThreshold") or 0)
    if success < 1:
        errs.append(err_out_of_bounds(success, 1, MAX_ID, "successThreshold"))
    if period == 0:
        if failure != 0:
            errs.append(FieldError("failureThreshold is disallowed when periodSeconds is zero",
                                   ["failureThreshold"]))
        if timeout != 0:
            errs.append(FieldError("timeoutSeconds is disallowed when periodSeconds is zero",
                                   ["timeoutSeconds"]))
    else:
        if timeout < 1:
            errs.append(err_out_of_bounds(timeout, 1, MAX_ID, "timeoutSeconds"))
        if failure < 1:
            errs.append(err_out_of_bounds(failure, 1, MAX_ID, "failureThreshold"))
    return errs


def validate_probe(p: Obj | None, port: Obj | None, is_user_container: bool) -> list[FieldError]:
    """validateProbe: ProbeMask, exactly one handler, and a user container's probe port is its
    serving port (a named port must be that port's name)."""
    if p is None:
        return []
    errs = check_disallowed_fields(p, PROBE_FIELDS)
    handlers = []
    for field, json_name, allowed in (("httpGet", "httpGet", HTTP_GET_FIELDS),
                                      ("tcpSocket", "tcpSocket", TCP_SOCKET_FIELDS)):
        action = p.get(field)
        if action is None:
            continue
        handlers.append(json_name)
        errs += via(field, check_disallowed_fields(action, allowed))
        probe_port = action.get("port")
        if is_user_container:
            assert port is not None
            if isinstance(probe_port, str) and probe_port and probe_port != port.get("name"):
                errs.append(err_invalid_value(probe_port, f"{field}.port",
                                              "Probe port must match container port"))
        elif probe_port in (None, "", 0):
            errs.append(err_invalid_value(probe_port or 0, f"{field}.port",
                                          "Probe port must be specified"))
    if p.get("exec") is not None:
        handlers.append("exec")
        errs += via("exec", check_disallowed_fields(p["exec"], EXEC_FIELDS))
    if p.get("grpc") is not None:
        handlers.append("gRPC")
        errs += via("grpc", check_disallowed_fields(p["grpc"], GRPC_FIELDS))
    if not handlers:
        errs.append(err_missing_one_of("httpGet", "tcpSocket", "exec", "grpc"))
    elif len(handlers) > 1:
        errs.append(err_multiple_one_of(*handlers))
    return errs

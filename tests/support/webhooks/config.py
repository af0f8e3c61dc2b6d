"""knative.dev/serving/pkg/apis/config, mirrored: config-features and config-defaults as the
webhook reads them (config.FromContextOrDefaults), at a default install's values.

Source: knative/serving tag knative-v1.23.0, pkg/apis/config/features.go
(defaultFeaturesConfig) and pkg/apis/config/defaults.go (defaultDefaultsConfig).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from tests.support.webhooks.autoscaling import AutoscalerConfig

ENABLED, DISABLED, ALLOWED, ALLOW_ROOT_BOUNDED = "Enabled", "Disabled", "Allowed", \
    "AllowRootBounded"

# defaultFeaturesConfig, by config-features key.
DEFAULT_FEATURES: Mapping[str, str] = MappingProxyType({
    "multi-container": ENABLED,
    "multi-container-probing": DISABLED,
    "kubernetes.podspec-affinity": DISABLED,
    "kubernetes.podspec-topologyspreadconstraints": DISABLED,
    "kubernetes.podspec-hostaliases": DISABLED,
    "kubernetes.podspec-fieldref": DISABLED,
    "kubernetes.podspec-nodeselector": DISABLED,
    "kubernetes.podspec-runtimeclassname": DISABLED,
    "kubernetes.podspec-securitycontext": DISABLED,
    "kubernetes.podspec-shareprocessnamespace": DISABLED,
    "kubernetes.podspec-hostipc": DISABLED,
    "kubernetes.podspec-hostpid": DISABLED,
    "kubernetes.podspec-hostnetwork": DISABLED,
    "kubernetes.podspec-priorityclassname": DISABLED,
    "kubernetes.podspec-schedulername": DISABLED,
    "kubernetes.containerspec-addcapabilities": DISABLED,
    "kubernetes.podspec-tolerations": DISABLED,
    "kubernetes.podspec-volumes-emptydir": ENABLED,
    "kubernetes.podspec-volumes-hostpath": DISABLED,
    "kubernetes.podspec-volumes-mount-propagation": DISABLED,
    "kubernetes.podspec-volumes-csi": DISABLED,
    "kubernetes.podspec-volumes-ephemeral": DISABLED,
    "kubernetes.podspec-volumes-image": DISABLED,
    "kubernetes.podspec-persistent-volume-claim": DISABLED,
    "kubernetes.podspec-persistent-volume-write": DISABLED,
    "queueproxy.mount-podinfo": DISABLED,
    "queueproxy.resource-defaults": DISABLED,
    "kubernetes.podspec-init-containers": DISABLED,
    "kubernetes.podspec-dnspolicy": DISABLED,
    "kubernetes.podspec-dnsconfig": DISABLED,
    "secure-pod-defaults": DISABLED,
    "tag-header-based-routing": DISABLED,
    "autodetect-http2": DISABLED,
})


@dataclass(frozen=True)
class Defaults:
    """config.Defaults at defaultDefaultsConfig (no revision-*-request/limit set)."""

    revision_timeout_seconds: int = 300
    max_revision_timeout_seconds: int = 600
    revision_response_start_timeout_seconds: int = 300
    revision_idle_timeout_seconds: int = 0
    user_container_name: str = "user-container"
    init_container_name: str = "init-container"
    container_concurrency: int = 0
    container_concurrency_max_limit: int = 1000
    allow_container_concurrency_zero: bool = True
    enable_service_links: bool | None = False
    # revision-{cpu,memory,ephemeral-storage}-{request,limit}: unset by default.
    resource_requests: Mapping[str, str] = field(default_factory=dict)
    resource_limits: Mapping[str, str] = field(default_factory=dict)


_RESOURCE_KEYS = {f"revision-{r}-{kind}": (kind + "s", name)
                  for r, name in (("cpu", "cpu"), ("memory", "memory"),
                                  ("ephemeral-storage", "ephemeral-storage"))
                  for kind in ("request", "limit")}


def new_defaults_config_from_map(data: Mapping[str, str]) -> Defaults:
    """config.NewDefaultsConfigFromMap: a config-defaults ConfigMap's data as Defaults;
    ValueError where Go errs. (Container name templates: literal names only.)"""
    def as_int(key: str, default: int) -> int:
        return int(data[key]) if key in data else default

    base = Defaults()
    timeout = as_int("revision-timeout-seconds", base.revision_timeout_seconds)
    max_timeout = as_int("max-revision-timeout-seconds", base.max_revision_timeout_seconds)
    idle = as_int("revision-idle-timeout-seconds", base.revision_idle_timeout_seconds)
    # The response start timeout defaults to the revision timeout, not to its own constant.
    response_start = as_int("revision-response-start-timeout-seconds", timeout)
    concurrency = as_int("container-concurrency", base.container_concurrency)
    max_concurrency = as_int("container-concurrency-max-limit",
                             base.container_concurrency_max_limit)
    links = base.enable_service_links
    if "enable-service-links" in data:
        raw = data["enable-service-links"].lower()
        links = True if raw == "true" else False if raw == "false" else None
    allow_zero = base.allow_container_concurrency_zero
    if "allow-container-concurrency-zero" in data:
        allow_zero = data["allow-container-concurrency-zero"].lower() == "true"
    names = {}
    for key, field_name in (("container-name-template", "user_container_name"),
                            ("init-container-name-template", "init_container_name")):
        if key in data:
            if "{{" in data[key]:
                raise NotImplementedError(f"{key}: Go templates are not mirrored")
            names[field_name] = data[key]
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    for key, (section, resource) in _RESOURCE_KEYS.items():
        if key in data:
            (requests if section == "requests" else limits)[resource] = data[key]
    if timeout > max_timeout:
        raise ValueError(f"revision-timeout-seconds ({timeout}) cannot be greater than "
                         f"max-revision-timeout-seconds ({max_timeout})")
    if 0 < response_start and response_start > timeout:
        raise ValueError(f"revision-response-start-timeout-seconds ({response_start}) cannot "
                         f"be greater than revision-timeout-seconds ({timeout})")
    if 0 < idle and idle > timeout:
        raise ValueError(f"revision-idle-timeout-seconds ({idle}) cannot be greater than "
                         f"revision-timeout-seconds ({timeout})")
    if max_concurrency < 1 or not 0 <= concurrency <= max_concurrency:
        raise ValueError("container-concurrency or container-concurrency-max-limit out of "
                         "bounds")
    return dataclasses.replace(
        base, revision_timeout_seconds=timeout, max_revision_timeout_seconds=max_timeout,
        revision_idle_timeout_seconds=idle, revision_response_start_timeout_seconds=response_start,
        container_concurrency=concurrency, container_concurrency_max_limit=max_concurrency,
        enable_service_links=links, allow_container_concurrency_zero=allow_zero,
        resource_requests=requests, resource_limits=limits, **names)


@dataclass(frozen=True)
class Config:
    """config.Config: what config.FromContextOrDefaults gives the webhook."""

    features: Mapping[str, str] = field(default_factory=lambda: DEFAULT_FEATURES)
    defaults: Defaults = field(default_factory=Defaults)
    autoscaler: AutoscalerConfig = field(default_factory=AutoscalerConfig)

    def flag(self, key: str) -> str:
        """The value of a config-features flag."""
        return self.features[key]

    def with_features(self, **flags: str) -> Config:
        """A copy with some flags changed; keys as in config-features with '_' for '-' and
        '__' for '.' (kubernetes__podspec_fieldref='Enabled')."""
        changed = {k.replace("__", ".").replace("_", "-"): v for k, v in flags.items()}
        unknown = set(changed) - set(DEFAULT_FEATURES)
        if unknown:
            raise KeyError(f"unknown config-features keys {sorted(unknown)}")
        return dataclasses.replace(self, features=MappingProxyType({**self.features, **changed}))


DEFAULT = Config()

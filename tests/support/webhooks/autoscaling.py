"""knative.dev/serving/pkg/apis/autoscaling, mirrored: the autoscaling annotations' rules.

Source: knative/serving tag knative-v1.23.0, pkg/apis/autoscaling/annotation_validation.go
(the rules), pkg/apis/autoscaling/register.go (keys, bounds) and
pkg/autoscaler/config/config.go defaultConfig (the config-autoscaler defaults).
Each function returns a list of FieldError (str), [] when Knative admits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tests.support.webhooks import goparse
from tests.support.webhooks.pkg_apis import (
    FieldError,
    err_generic,
    err_invalid_value,
    err_out_of_bounds,
    key_priority_get,
)

GROUP = "autoscaling.knative.dev"  # autoscaling.GroupName
KPA = "kpa.autoscaling.knative.dev"
HPA = "hpa.autoscaling.knative.dev"
DOMAIN = ".knative.dev"

# kmap.KeyPriority lists of register.go: the first key is the current one, the rest legacy.
CLASS = (f"{GROUP}/class",)
MIN_SCALE = (f"{GROUP}/min-scale", f"{GROUP}/minScale")
MAX_SCALE = (f"{GROUP}/max-scale", f"{GROUP}/maxScale")
INITIAL_SCALE = (f"{GROUP}/initial-scale", f"{GROUP}/initialScale")
ACTIVATION_SCALE = (f"{GROUP}/activation-scale",)
SCALE_DOWN_DELAY = (f"{GROUP}/scale-down-delay", f"{GROUP}/scaleDownDelay")
RETENTION = (f"{GROUP}/scale-to-zero-pod-retention-period",
             f"{GROUP}/scaleToZeroPodRetentionPeriod")
WINDOW = (f"{GROUP}/window",)
METRIC = (f"{GROUP}/metric",)
ALGORITHM = (f"{GROUP}/metric-aggregation-algorithm", f"{GROUP}/metricAggregationAlgorithm")
TARGET = (f"{GROUP}/target",)
TARGET_UTILIZATION = (f"{GROUP}/target-utilization-percentage",
                      f"{GROUP}/targetUtilizationPercentage")
TARGET_BURST_CAPACITY = (f"{GROUP}/target-burst-capacity", f"{GROUP}/targetBurstCapacity")
PANIC_WINDOW = (f"{GROUP}/panic-window-percentage", f"{GROUP}/panicWindowPercentage")
PANIC_THRESHOLD = (f"{GROUP}/panic-threshold-percentage", f"{GROUP}/panicThresholdPercentage")

WINDOW_MIN = 6 * goparse.SECOND
WINDOW_MAX = goparse.HOUR
TARGET_MIN = 0.01


@dataclass(frozen=True)
class AutoscalerConfig:
    """The fields of autoscalerconfig.Config the rules read, at config-autoscaler's defaults."""

    pod_autoscaler_class: str = KPA
    max_scale_limit: int = 0
    allow_zero_initial_scale: bool = False


def validate_annotations(config: AutoscalerConfig,
                         anns: Mapping[str, str]) -> list[FieldError]:
    """autoscaling.ValidateAnnotations: every rule below, in Go's order."""
    return [*validate_class(anns), *validate_min_max_scale(config, anns),
            *validate_floats(anns), *validate_window(anns), *validate_last_pod_retention(anns),
            *validate_scale_down_delay(anns), *validate_metric(config, anns),
            *validate_algorithm(anns), *validate_initial_scale(config, anns)]


def get_int_ge0(m: Mapping[str, str], keys: tuple[str, ...]) -> tuple[int, list[FieldError]]:
    """getIntGE0: an int32 >= 0 (0 when absent)."""
    key, value, found = key_priority_get(keys, m)
    if not found:
        return 0, []
    try:
        number = goparse.parse_int(value, 32)
    except OverflowError:
        return 0, [err_out_of_bounds(value, 0, goparse.INT32_MAX, key)]
    except ValueError:
        return 0, [err_invalid_value(value, key)]
    if number < 0:
        return 0, [err_out_of_bounds(value, 0, goparse.INT32_MAX, key)]
    return number, []


def validate_class(m: Mapping[str, str]) -> list[FieldError]:
    """validateClass: a *.knative.dev class must be KPA or HPA."""
    key, value, found = key_priority_get(CLASS, m)
    if found and value.endswith(DOMAIN) and value not in (KPA, HPA):
        return [err_invalid_value(value, key)]
    return []


def validate_algorithm(m: Mapping[str, str]) -> list[FieldError]:
    """validateAlgorithm: under KPA, a known metric aggregation algorithm."""
    if key_priority_get(CLASS, m)[1] != KPA:
        return []
    key, value, _ = key_priority_get(ALGORITHM, m)
    if value and value not in ("linear", "weighted-exponential", "weightedExponential"):
        return [err_invalid_value(value, key)]
    return []


def _float_rule(m: Mapping[str, str], keys: tuple[str, ...], low: float,
                high: float) -> list[FieldError]:
    key, value, found = key_priority_get(keys, m)
    if not found:
        return []
    try:
        number = goparse.parse_float(value)
    except ValueError:
        return [err_invalid_value(value, key)]
    if number < low or number > high:
        return [err_out_of_bounds(value, f"{low:g}", f"{high:g}", key)]
    return []


def validate_floats(m: Mapping[str, str]) -> list[FieldError]:
    """validateFloats: panic window and threshold percentages, target, target utilization
    and target burst capacity."""
    errs = [*_float_rule(m, PANIC_WINDOW, 1.0, 100.0),
            *_float_rule(m, PANIC_THRESHOLD, 110.0, 1000.0)]
    key, value, found = key_priority_get(TARGET, m)
    if found:
        try:
            if goparse.parse_float(value) < TARGET_MIN:
                errs.append(err_generic(f"target {value} should be at least {TARGET_MIN:g}", key))
        except ValueError:
            errs.append(err_invalid_value(value, key))
    errs += _float_rule(m, TARGET_UTILIZATION, 1, 100)
    key, value, found = key_priority_get(TARGET_BURST_CAPACITY, m)
    if found:
        try:
            bad = goparse.parse_float(value)
            if bad < 0 and bad != -1:
                errs.append(err_invalid_value(value, key))
        except ValueError:
            errs.append(err_invalid_value(value, key))
    return errs


def validate_scale_down_delay(m: Mapping[str, str]) -> list[FieldError]:
    """validateScaleDownDelay: a Go duration in [0, 1h] at most second precision."""
    key, value, found = key_priority_get(SCALE_DOWN_DELAY, m)
    if not found:
        return []
    try:
        delay = goparse.parse_duration(value)
    except ValueError:
        return [err_invalid_value(value, key)]
    if delay < 0 or delay > WINDOW_MAX:
        return [err_out_of_bounds(value, "0s", goparse.format_duration(WINDOW_MAX), key)]
    if delay % goparse.SECOND:
        return [err_generic("must be specified with at most second precision", key)]
    return []


def validate_last_pod_retention(m: Mapping[str, str]) -> list[FieldError]:
    """validateLastPodRetention: scale-to-zero-pod-retention-period in [0, 1h]."""
    key, value, found = key_priority_get(RETENTION, m)
    if not found:
        return []
    try:
        period = goparse.parse_duration(value)
    except ValueError:
        return [err_invalid_value(value, key)]
    if period < 0 or period > WINDOW_MAX:
        return [err_out_of_bounds(value, "0s", goparse.format_duration(WINDOW_MAX), key)]
    return []


def validate_window(m: Mapping[str, str]) -> list[FieldError]:
    """validateWindow: a Go duration in [6s, 1h] at most second precision."""
    key, value, found = key_priority_get(WINDOW, m)
    if not found:
        return []
    try:
        window = goparse.parse_duration(value)
    except ValueError:
        return [err_invalid_value(value, key)]
    if window < WINDOW_MIN or window > WINDOW_MAX:
        return [err_out_of_bounds(value, goparse.format_duration(WINDOW_MIN),
                                  goparse.format_duration(WINDOW_MAX), key)]
    if window % goparse.SECOND:
        return [err_generic("must be specified with at most second precision", key)]
    return []


def validate_min_max_scale(config: AutoscalerConfig,
                           m: Mapping[str, str]) -> list[FieldError]:
    """validateMinMaxScale: integers >= 0, max-scale (0: unlimited) >= min-scale, within
    config-autoscaler's max-scale-limit, and activation-scale between them."""
    low, errs = get_int_ge0(m, MIN_SCALE)
    high, more = get_int_ge0(m, MAX_SCALE)
    errs += more
    if high != 0 and high < low:
        errs.append(FieldError(f"max-scale={high} is less than min-scale={low}",
                               [MAX_SCALE[0], MIN_SCALE[0]]))
    key, _, found = key_priority_get(MAX_SCALE, m)
    if found:
        errs += validate_max_scale_within_limit(key, high, config.max_scale_limit)
    key, value, found = key_priority_get(ACTIVATION_SCALE, m)
    if found:
        try:
            activation = goparse.parse_int(value, 32)
        except (ValueError, OverflowError):
            return [*errs, err_invalid_value(value, key)]
        if low > activation:
            errs.append(FieldError(
                f"min-scale={low} is greater than activation-scale={activation}", [key]))
        elif high < activation and high != 0:
            errs.append(FieldError(
                f"max-scale={high} is less than activation-scale={activation}", [key]))
        elif activation < 2:
            errs.append(FieldError(
                f"activation-scale={activation} must be greater than 1", [key]))
    return errs


def validate_max_scale_within_limit(key: str, max_scale: int,
                                    limit: int) -> list[FieldError]:
    """validateMaxScaleWithinLimit: with a max-scale-limit, 1 <= max-scale <= limit."""
    if limit == 0:
        return []
    errs = []
    if max_scale > limit:
        errs.append(err_out_of_bounds(max_scale, 1, limit, key))
    if max_scale == 0:
        errs.append(FieldError(f"max-scale=0 (unlimited), must be less than {limit}", [key]))
    return errs


def validate_metric(config: AutoscalerConfig, m: Mapping[str, str]) -> list[FieldError]:
    """validateMetric: KPA takes concurrency or rps; HPA any non-empty metric."""
    _, metric, found = key_priority_get(METRIC, m)
    if not found:
        return []
    _, klass, has_class = key_priority_get(CLASS, m)
    klass = klass if has_class else config.pod_autoscaler_class
    if klass == KPA and metric in ("concurrency", "rps"):
        return []
    if klass == HPA and metric != "":
        return []
    if klass not in (KPA, HPA):
        return []
    return [err_invalid_value(metric, METRIC[0])]


def validate_initial_scale(config: AutoscalerConfig,
                           m: Mapping[str, str]) -> list[FieldError]:
    """validateInitialScale: an integer >= 0, and 0 only with allow-zero-initial-scale."""
    key, value, found = key_priority_get(INITIAL_SCALE, m)
    if not found:
        return []
    try:
        scale = goparse.atoi(value)
    except (ValueError, OverflowError):
        return [err_invalid_value(value, key)]
    if scale < 0:
        return [err_invalid_value(value, f"{key} must be greater than 0")]
    if not config.allow_zero_initial_scale and scale == 0:
        return [err_invalid_value(value, f"{key}=0 not allowed by cluster")]
    return []

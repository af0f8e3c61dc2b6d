"""Domain exceptions, each mapped once to an HTTP status, a JSON error code, and how it is
logged (level and words): the one table of errors."""

import logging


class ThumbnailsError(Exception):
    """Base class: an error with an HTTP status, a stable error code, and the level and words
    its answer is logged with (httperrors._handle_domain)."""

    status = 500
    code = "internal"
    log_level = logging.ERROR
    summary = "internal error"

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.code)
        self.message = message or self.code


class BadRequest(ThumbnailsError):
    status, code = 400, "bad_request"
    log_level, summary = logging.INFO, "bad request"


class EmptyFile(BadRequest):
    code = "empty_file"


class InvalidEvent(ThumbnailsError):
    status, code = 400, "invalid_event"
    log_level, summary = logging.WARNING, "invalid event refused"  # a sender to look at


class ForgedEvent(InvalidEvent):
    """An event naming a job whose recorded event it does not carry (or a reference the
    service keeps for itself): refused, nothing changes."""

    code = "forged_event"


class Unauthorized(ThumbnailsError):
    status, code = 401, "unauthorized"
    log_level, summary = logging.WARNING, "unauthorized request refused"


class Forbidden(ThumbnailsError):
    status, code = 403, "forbidden"
    log_level, summary = logging.INFO, "signed link refused"


class NotFound(ThumbnailsError):
    status, code = 404, "not_found"
    log_level, summary = logging.INFO, "not found"


class ObjectNotFound(NotFound):
    code = "object_not_found"


class NotReady(ThumbnailsError):
    status, code = 409, "not_ready"
    log_level, summary = logging.INFO, "not ready"


class JobBusy(ThumbnailsError):
    status, code = 409, "job_busy"
    log_level, summary = logging.INFO, "job busy"


class RequestTimeout(ThumbnailsError):
    status, code = 408, "request_timeout"
    log_level, summary = logging.INFO, "client too slow"


class PayloadTooLarge(ThumbnailsError):
    status, code = 413, "too_large"
    log_level, summary = logging.INFO, "payload too large"


class UnsupportedMediaType(ThumbnailsError):
    status, code = 415, "unsupported_type"
    log_level, summary = logging.INFO, "unsupported media type"


class InvalidImage(ThumbnailsError):
    status, code = 422, "invalid_image"
    log_level, summary = logging.INFO, "invalid image"


class ImageTooLarge(InvalidImage):
    code = "image_too_large"


class TooManyRequests(ThumbnailsError):
    """Asked again too soon: retry_after is the seconds until it may be asked again."""

    status, code = 429, "too_many_requests"
    log_level, summary = logging.INFO, "asked again too soon"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class WebhookFailed(ThumbnailsError):
    """A callback receiver did not take a webhook (no answer or not 2xx): the broker retries."""

    status, code = 502, "webhook_failed"
    log_level, summary = logging.WARNING, "webhook not taken by its receiver"


class IdempotencyKeyReused(ThumbnailsError):
    """draft-ietf-httpapi-idempotency-key-header, section 2.7: a key reused with another
    request payload is answered 422."""

    status, code = 422, "idempotency_key_reused"
    log_level, summary = logging.INFO, "idempotency key reused with another payload"


class DependencyUnavailable(ThumbnailsError):
    status, code = 503, "unavailable"
    log_level, summary = logging.WARNING, "dependency unavailable"
    retry_after = 5


class StorageUnavailable(DependencyUnavailable):
    code = "storage_unavailable"


class RedisUnavailable(DependencyUnavailable):
    code = "redis_unavailable"

"""Domain exceptions, each mapped once to an HTTP status and a JSON error code."""


class ThumbnailsError(Exception):
    """Base class: an error with an HTTP status and a stable error code."""

    status = 500
    code = "internal"

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.code)
        self.message = message or self.code


class BadRequest(ThumbnailsError):
    status, code = 400, "bad_request"


class EmptyFile(BadRequest):
    code = "empty_file"


class InvalidEvent(ThumbnailsError):
    status, code = 400, "invalid_event"


class Unauthorized(ThumbnailsError):
    status, code = 401, "unauthorized"


class NotFound(ThumbnailsError):
    status, code = 404, "not_found"


class ObjectNotFound(NotFound):
    code = "object_not_found"


class NotReady(ThumbnailsError):
    status, code = 409, "not_ready"


class JobBusy(ThumbnailsError):
    status, code = 409, "job_busy"


class PayloadTooLarge(ThumbnailsError):
    status, code = 413, "too_large"


class UnsupportedMediaType(ThumbnailsError):
    status, code = 415, "unsupported_type"


class InvalidImage(ThumbnailsError):
    status, code = 422, "invalid_image"


class ImageTooLarge(InvalidImage):
    code = "image_too_large"


class TooManyRequests(ThumbnailsError):
    """Asked again too soon: retry_after is the seconds until it may be asked again."""

    status, code = 429, "too_many_requests"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DependencyUnavailable(ThumbnailsError):
    status, code = 503, "unavailable"
    retry_after = 5


class StorageUnavailable(DependencyUnavailable):
    code = "storage_unavailable"


class RedisUnavailable(DependencyUnavailable):
    code = "redis_unavailable"

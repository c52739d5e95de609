"""Errors the gateway answers with a status code and a JSON body that names the problem."""

from __future__ import annotations


class ApiError(Exception):
    status = 400
    reason = "bad_request"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"reason": self.reason, "message": self.message}}


class BadRequest(ApiError):
    pass


class BadShape(ApiError):
    reason = "bad_tensor"


class BadImage(ApiError):
    reason = "undecodable_image"


class Unauthorized(ApiError):
    status = 401
    reason = "unauthorized"


class NotFound(ApiError):
    status = 404
    reason = "not_found"


class TooLarge(ApiError):
    status = 413
    reason = "body_too_large"


class UnsupportedMediaType(ApiError):
    status = 415
    reason = "unsupported_content_type"


class InvalidConfig(ApiError):
    status = 422
    reason = "invalid_config"


class Unavailable(ApiError):
    status = 503
    reason = "triton_unavailable"

    def __init__(self, message: str, retry_after_s: int = 2) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_s)})


class ReadOnly(ApiError):
    """The experiments are declared in a file this gateway only reads (a ConfigMap): change the file instead."""

    status = 409
    reason = "experiments_read_only"

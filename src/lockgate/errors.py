"""One exception tree for lockgate.

Every error knows its HTTP status, a stable machine code, and how it is named in
each wire dialect. The gateway renders them in exactly one place
(`lockgate.gateway.render`), so a handler never builds an error body by hand.

    LockgateError                      500 internal_error
    ├── ConfigError                    (CLI exit 2; never reaches HTTP)
    ├── ClientError                    400 invalid_request
    │   ├── InvalidRequest             400 invalid_request
    │   ├── AuthenticationFailed       401 invalid_api_key
    │   ├── PermissionDenied           403 permission_denied
    │   │   ├── ApprovalDenied         403 approval_denied (a reviewer said no)
    │   │   └── ApprovalTimedOut       403 approval_timeout (no reviewer in time)
    │   ├── ApprovalPending            202 approval_pending (held; poll the approval id)
    │   ├── NotFound                   404 not_found
    │   │   └── ModelNotFound          404 model_not_found
    │   ├── MethodNotAllowed           405 method_not_allowed
    │   ├── Conflict                   409 conflict (a duplicate name, a record still in use)
    │   │   └── GateFailed             409 gate_failed (a prompt version failed its quality gate)
    │   ├── PayloadTooLarge            413 request_too_large
    │   ├── RateLimited                429 rate_limit_exceeded (a key/user/team/agent limit)
    │   ├── BudgetExceeded             429 budget_exceeded (a day or month budget is spent)
    │   ├── GuardrailBlocked           400 guardrail_blocked (an input or output guardrail refused it)
    │   └── UnsupportedOperation       400 unsupported_operation
    ├── LimiterUnavailable             503 limits_unavailable (the limits store is unreachable)
    └── UpstreamError                  502 upstream_error
        ├── UpstreamTimeout            504 upstream_timeout
        ├── UpstreamUnavailable        502 upstream_unavailable (connection failed)
        ├── UpstreamRateLimited        429 upstream_rate_limited
        ├── UpstreamRejected           4xx the upstream refused the request (not retried);
        │                              502 upstream_auth_failed when it refused our credentials
        ├── NoRouteAvailable           503 no_route_available (all routes failed or open)
        └── StreamInterrupted          502 stream_interrupted (after the first byte)
"""

from __future__ import annotations

__all__ = [
    "ApprovalDenied",
    "ApprovalPending",
    "ApprovalTimedOut",
    "AuthenticationFailed",
    "BudgetExceeded",
    "ClientError",
    "ConfigError",
    "Conflict",
    "GateFailed",
    "GuardrailBlocked",
    "InvalidRequest",
    "LimiterUnavailable",
    "LockgateError",
    "MethodNotAllowed",
    "ModelNotFound",
    "NoRouteAvailable",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "RateLimited",
    "StreamInterrupted",
    "UnsupportedOperation",
    "UpstreamError",
    "UpstreamRateLimited",
    "UpstreamRejected",
    "UpstreamTimeout",
    "UpstreamUnavailable",
]

# Anthropic names its error types by status; OpenAI uses a small set of types.
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "api_error",
    529: "overloaded_error",
}


class LockgateError(Exception):
    """Root of every error lockgate raises on purpose."""

    status: int = 500
    code: str = "internal_error"
    openai_type: str = "server_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        retry_after: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.retry_after = retry_after
        self.headers = dict(headers or {})

    @property
    def anthropic_type(self) -> str:
        return _ANTHROPIC_TYPES.get(self.status, "api_error" if self.status >= 500 else "invalid_request_error")


class ConfigError(LockgateError):
    """The configuration is invalid; each entry of `problems` names a key and a line."""

    code = "config_error"

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


class ClientError(LockgateError):
    status = 400
    code = "invalid_request"
    openai_type = "invalid_request_error"


class InvalidRequest(ClientError):
    pass


class AuthenticationFailed(ClientError):
    status = 401
    code = "invalid_api_key"
    openai_type = "authentication_error"


class PermissionDenied(ClientError):
    status = 403
    code = "permission_denied"
    openai_type = "permission_error"


class ApprovalDenied(PermissionDenied):
    code = "approval_denied"


class ApprovalTimedOut(PermissionDenied):
    code = "approval_timeout"


class ApprovalPending(ClientError):
    """Not an error for the caller: the request is held for a human (async mode).
    The edge answers 202 with the approval id to poll; `approval_id` names it."""

    status = 202
    code = "approval_pending"

    def __init__(self, message: str, *, approval_id: str) -> None:
        super().__init__(message)
        self.approval_id = approval_id


class NotFound(ClientError):
    status = 404
    code = "not_found"
    openai_type = "invalid_request_error"


class ModelNotFound(NotFound):
    code = "model_not_found"


class MethodNotAllowed(ClientError):
    status = 405
    code = "method_not_allowed"


class Conflict(ClientError):
    """The change clashes with what is stored: a name taken, a record still referenced."""

    status = 409
    code = "conflict"


class GateFailed(Conflict):
    """Moving a prompt label that a quality gate covers was refused: the version failed
    the gate. The message names each failing metric; `failures` lists them."""

    code = "gate_failed"

    def __init__(self, message: str, *, failures: list[str], run_id: str | None = None) -> None:
        super().__init__(message)
        self.failures = list(failures)
        self.run_id = run_id


class PayloadTooLarge(ClientError):
    status = 413
    code = "request_too_large"


class UnsupportedOperation(ClientError):
    code = "unsupported_operation"


class RateLimited(ClientError):
    """A per-minute or concurrency limit of a principal fired. OpenAI names the limit's
    unit in the error type: "requests" (also for concurrency) or "tokens"."""

    status = 429
    code = "rate_limit_exceeded"
    openai_type = "requests"

    def __init__(
        self, message: str, *, retry_after: float | None = None, openai_type: str = "requests"
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.openai_type = openai_type


class BudgetExceeded(ClientError):
    """A day or month budget of a principal is spent; `retry_after` runs to the next
    UTC day or month. OpenAI words a spent quota as type "insufficient_quota"."""

    status = 429
    code = "budget_exceeded"
    openai_type = "insufficient_quota"


class GuardrailBlocked(ClientError):
    """A guardrail refused the request or its answer (LiteLLM also answers 400). The
    message names the scanner, where it fired and the entity, never the matched text."""

    code = "guardrail_blocked"


class LimiterUnavailable(LockgateError):
    """The shared limits store (Redis) is unreachable and limits fail closed."""

    status = 503
    code = "limits_unavailable"
    openai_type = "server_error"


class UpstreamError(LockgateError):
    """An upstream provider failed. `retryable` decides whether the router tries again."""

    status = 502
    code = "upstream_error"
    openai_type = "server_error"
    retryable = True

    def __init__(
        self,
        message: str,
        *,
        upstream_status: int | None = None,
        retry_after: float | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message, retry_after=retry_after, param=param)
        self.upstream_status = upstream_status


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"


class UpstreamUnavailable(UpstreamError):
    code = "upstream_unavailable"


class UpstreamRateLimited(UpstreamError):
    status = 429
    code = "upstream_rate_limited"
    openai_type = "rate_limit_error"


class UpstreamRejected(UpstreamError):
    """A 4xx other than 429 from the upstream: the request itself is wrong; never retried."""

    code = "upstream_rejected"
    openai_type = "invalid_request_error"
    retryable = False

    def __init__(self, message: str, *, upstream_status: int, param: str | None = None) -> None:
        super().__init__(message, upstream_status=upstream_status, param=param)
        # Pass the client-facing class of the status on (400, 404, 413, 422 ...), except an
        # upstream refusing the gateway's own credentials: that is the operator's problem,
        # and a 401 would tell the client its key is wrong.
        if upstream_status in (401, 403, 407):
            self.status = 502
            self.code = "upstream_auth_failed"
            self.openai_type = "server_error"
        else:
            self.status = upstream_status if 400 <= upstream_status < 500 else 502


class NoRouteAvailable(UpstreamError):
    status = 503
    code = "no_route_available"
    retryable = False


class StreamInterrupted(UpstreamError):
    code = "stream_interrupted"
    retryable = False

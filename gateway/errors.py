"""The gateway's exception tree: every error a client can see knows its HTTP status and code.

    GatewayError                      500 internal_error
    ├── InvalidRequest                400 invalid_request
    │   └── InvalidQuery              400 invalid_query      (with a position in the SQL)
    ├── Unauthorized                  401 unauthorized
    ├── Forbidden                     403 forbidden
    │   └── BudgetExhausted           403 budget_exhausted
    ├── NotFound                      404 not_found
    ├── MethodNotAllowed              405 method_not_allowed
    ├── Conflict                      409 conflict
    │   ├── IdempotencyInProgress     409 idempotency_in_progress
    │   ├── DatasetSuspended          409 dataset_suspended
    │   ├── ProductSuspended          409 product_suspended
    │   └── RegistrationRequired      409 registration_required (no valid registration code)
    ├── DatasetWithdrawn              410 dataset_withdrawn
    ├── ProductRetired                410 product_retired
    ├── AgreementEnded                410 agreement_ended    (what stood on it has ended)
    ├── PayloadTooLarge               413 payload_too_large
    ├── UnsupportedMediaType          415 unsupported_media_type
    ├── Unprocessable                 422 unprocessable
    │   ├── PolicyViolation           422 policy_violation   (with every reason)
    │   ├── PriceOverCap              422 price_over_cap     (with every reason)
    │   └── IdempotencyKeyReused      422 idempotency_key_reused
    ├── RateLimited                   429 rate_limited       (with Retry-After)
    ├── ReleaseFailed                 500 release_failed     (after data was touched: generic)
    ├── Unavailable                   503 unavailable        (with Retry-After)
    └── TokenError                    the token endpoint's: RFC 6749 §5.2 `error` members too
        ├── InvalidTokenRequest       400 invalid_request        (also an InvalidRequest)
        ├── UnsupportedGrantType      400 unsupported_grant_type
        ├── InvalidClient             401 invalid_client         (WWW-Authenticate: Basic)
        └── TokenAttemptsThrottled    429 rate_limited, slow_down (also a RateLimited)

`PolicyInvalid` is not an HTTP error: it is raised when a policy file does not validate and
carries every located problem. `core` may import this module and nothing else of ours.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self

PROBLEM_BASE = "https://gateway.county.example/problems/"


class GatewayError(Exception):
    """Base of every error the HTTP layer turns into problem+json."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str = "", *, headers: Mapping[str, str] | None = None,
                 extra: Mapping[str, Any] | None = None) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def problem(self) -> dict[str, Any]:
        """The RFC 9457 body; `extra` members are data-independent by construction."""
        body: dict[str, Any] = {
            "type": PROBLEM_BASE + self.code.replace("_", "-"),
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        body.update(self.extra)
        return body

    def fresh(self) -> Self:
        """The same error as a new object (a kept refusal raised again starts with no traceback)."""
        twin = type(self).__new__(type(self), *self.args)
        twin.__dict__.update({k: v.copy() if isinstance(v, dict | list) else v for k, v in vars(self).items()})
        return twin


class InvalidRequest(GatewayError):
    status, code, title = 400, "invalid_request", "Invalid request"


class InvalidQuery(InvalidRequest):
    code, title = "invalid_query", "Invalid query"

    def __init__(self, detail: str, *, line: int | None = None, column: int | None = None) -> None:
        extra: dict[str, Any] = {}
        if line is not None:
            extra["position"] = {"line": line, "column": column}
        super().__init__(detail, extra=extra)
        self.line, self.column = line, column


class Unauthorized(GatewayError):
    """The reason is named where it is the caller's own business (no token, the wrong scheme,
    not a JWT, an unknown key, an expired token of ours); whatever a forger could probe (the
    signature, the claims) gets one generic detail (R-AU-09). The challenge repeats it."""

    status, code, title = 401, "unauthorized", "Unauthorized"

    def __init__(self, detail: str = "The token is not valid.", *, error: str | None = "invalid_token") -> None:
        # RFC 6750 §3: no error code when the request carried no token at all.
        challenge = (f'Bearer realm="{TOKEN_REALM}"' if error is None
                     else f'Bearer error="{error}", error_description="{detail}"')
        super().__init__(detail, headers={"WWW-Authenticate": challenge})


class Forbidden(GatewayError):
    status, code, title = 403, "forbidden", "Forbidden"


class BudgetExhausted(Forbidden):
    code, title = "budget_exhausted", "Privacy budget exhausted"


class NotFound(GatewayError):
    status, code, title = 404, "not_found", "Not found"


class MethodNotAllowed(GatewayError):
    status, code, title = 405, "method_not_allowed", "Method not allowed"


class Conflict(GatewayError):
    status, code, title = 409, "conflict", "Conflict"


class IdempotencyInProgress(Conflict):
    code, title = "idempotency_in_progress", "A request with this Idempotency-Key is running"


class DatasetSuspended(Conflict):
    code, title = "dataset_suspended", "Dataset suspended"


class ProductSuspended(Conflict):
    code, title = "product_suspended", "Product suspended"


class RegistrationRequired(Conflict):
    code, title = "registration_required", "Registration required"


class DatasetWithdrawn(GatewayError):
    status, code, title = 410, "dataset_withdrawn", "Dataset withdrawn"


class ProductRetired(GatewayError):
    status, code, title = 410, "product_retired", "Product retired"


class AgreementEnded(GatewayError):
    status, code, title = 410, "agreement_ended", "Authorisation agreement ended"


class PayloadTooLarge(GatewayError):
    status, code, title = 413, "payload_too_large", "Payload too large"


class UnsupportedMediaType(GatewayError):
    status, code, title = 415, "unsupported_media_type", "Unsupported media type"


class Unprocessable(GatewayError):
    status, code, title = 422, "unprocessable", "Unprocessable request"


class PolicyViolation(Unprocessable):
    code, title = "policy_violation", "The policy does not allow this query"

    def __init__(self, reasons: Sequence[str]) -> None:
        super().__init__("; ".join(reasons), extra={"reasons": list(reasons)})
        self.reasons = tuple(reasons)


class PriceOverCap(Unprocessable):
    """A price (or trial price) above the fee cap the bureau set, or in another model."""

    code, title = "price_over_cap", "The price exceeds its fee cap"

    def __init__(self, detail: str, reasons: Sequence[str]) -> None:
        super().__init__(detail, extra={"reasons": list(reasons)})
        self.reasons = tuple(reasons)


class IdempotencyKeyReused(Unprocessable):
    code, title = "idempotency_key_reused", "Idempotency-Key reused with a different request"


class RateLimited(GatewayError):
    status, code, title = 429, "rate_limited", "Rate limited"


class ReleaseFailed(GatewayError):
    """After data was touched: one generic shape, whatever went wrong (R-DP-11)."""

    status, code, title = 500, "release_failed", "The release could not be completed"

    def __init__(self) -> None:
        super().__init__("The release failed; the privacy cost stays charged and nothing is billed.")


class Unavailable(GatewayError):
    status, code, title = 503, "unavailable", "Service unavailable"

    def __init__(self, detail: str = "Try again shortly.", retry_after: int = 1) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


TOKEN_REALM = "county-gateway"


class TokenError(GatewayError):
    """An error of the token endpoint: the problem body also carries RFC 6749 §5.2's `error` and
    `error_description`, so OAuth clients read it as the refusal it is, never as a token."""

    oauth_error: ClassVar[str] = "invalid_request"

    def __init__(self, detail: str = "", *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail, headers={"Cache-Control": "no-store", "Pragma": "no-cache", **(headers or {})})

    def problem(self) -> dict[str, Any]:
        body = super().problem()
        body.update({"error": self.oauth_error, "error_description": self.detail})
        return body


class InvalidTokenRequest(TokenError, InvalidRequest):
    oauth_error = "invalid_request"


class UnsupportedGrantType(TokenError):
    status, code, title = 400, "unsupported_grant_type", "Unsupported grant type"
    oauth_error = "unsupported_grant_type"


class InvalidClient(TokenError):
    """Client authentication failed; the challenge names the scheme a client may use (RFC 6749 §5.2)."""

    status, code, title = 401, "invalid_client", "Invalid client"
    oauth_error = "invalid_client"

    def __init__(self, detail: str = "The client credentials are not valid.") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": f'Basic realm="{TOKEN_REALM}"'})


class TokenAttemptsThrottled(TokenError, RateLimited):
    oauth_error = "slow_down"

    def __init__(self, retry_after: int) -> None:
        super().__init__("Too many failed token requests for this client or address; retry after the time given.",
                         headers={"Retry-After": str(max(1, retry_after))})


@dataclass(frozen=True)
class Located:
    """One problem in a file, at a line and column (1-based)."""

    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class PolicyInvalid(Exception):
    """A policy did not validate; `problems` lists every one, located."""

    def __init__(self, problems: Sequence[Located]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = tuple(problems)

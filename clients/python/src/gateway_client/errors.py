"""The client's exception tree: one class per problem code the gateway answers with.

    GatewayError                      any error answer (the problem document in `.problem`)
    ├── InvalidRequest                400 invalid_request
    │   └── InvalidQuery              400 invalid_query          (`.position`: line and column)
    ├── Unauthorized                  401 unauthorized, OAuth invalid_client
    ├── Forbidden                     403 forbidden
    │   └── BudgetExhausted           403 budget_exhausted       (`.epsilon_remaining`)
    ├── NotFound                      404 not_found
    ├── MethodNotAllowed              405 method_not_allowed
    ├── Conflict                      409 conflict
    │   ├── IdempotencyInProgress     409 idempotency_in_progress
    │   ├── DatasetSuspended          409 dataset_suspended
    │   ├── ProductSuspended          409 product_suspended
    │   └── RegistrationRequired      409 registration_required  (`.registration_status`)
    ├── DatasetWithdrawn              410 dataset_withdrawn
    ├── ProductRetired                410 product_retired
    ├── AgreementEnded                410 agreement_ended        (the authorisation agreement under a grant)
    ├── PayloadTooLarge               413 payload_too_large
    ├── UnsupportedMediaType          415 unsupported_media_type
    ├── Unprocessable                 422 unprocessable
    │   ├── PolicyViolation           422 policy_violation       (`.reasons`)
    │   ├── PriceOverCap              422 price_over_cap         (`.reasons`)
    │   └── IdempotencyKeyReused      422 idempotency_key_reused
    ├── RateLimited                   429 rate_limited           (`.retry_after`, seconds)
    ├── ReleaseFailed                 500 release_failed
    ├── Unavailable                   503 unavailable            (`.retry_after`, seconds)
    └── ConnectionFailed              no answer at all, after every retry

The class is chosen by the answer's `code` (problem+json), or by `error` for the token
endpoint's RFC 6749 §5.2 answers; a code this client does not know stays a `GatewayError`
with that code, so a newer server never breaks an older client.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping
from typing import Any, ClassVar


class GatewayError(Exception):
    """An error answer from the gateway; `problem` is its body as sent."""

    default_status: ClassVar[int | None] = None
    default_code: ClassVar[str] = "gateway_error"

    def __init__(self, problem: Mapping[str, Any] | None = None, *, status: int | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        self.problem: dict[str, Any] = dict(problem or {})
        self.status: int | None = status if status is not None else self.default_status
        self.code: str = str(self.problem.get("code") or self.problem.get("error") or self.default_code)
        self.headers: dict[str, str] = {k.lower(): v for k, v in (headers or {}).items()}
        self.detail: str = str(self.problem.get("detail") or self.problem.get("error_description")
                               or self.problem.get("title") or self.code)
        self.request_id: str | None = self.headers.get("x-request-id")
        #: The Idempotency-Key the failed call carried (query and invoke), to retry it by hand.
        self.idempotency_key: str | None = None
        super().__init__(f"{self.status} {self.code}: {self.detail}" if self.status else f"{self.code}: {self.detail}")


class InvalidRequest(GatewayError):
    default_status, default_code = 400, "invalid_request"


class InvalidQuery(InvalidRequest):
    default_code = "invalid_query"

    @property
    def position(self) -> dict[str, Any] | None:
        """`{"line", "column"}` of the offending SQL, when the gateway could place it."""
        pos = self.problem.get("position")
        return dict(pos) if isinstance(pos, dict) else None


class Unauthorized(GatewayError):
    default_status, default_code = 401, "unauthorized"


class Forbidden(GatewayError):
    default_status, default_code = 403, "forbidden"


class BudgetExhausted(Forbidden):
    default_code = "budget_exhausted"

    @property
    def epsilon_remaining(self) -> float | None:
        value = self.problem.get("epsilon_remaining")
        return float(value) if isinstance(value, int | float) else None


class NotFound(GatewayError):
    default_status, default_code = 404, "not_found"


class MethodNotAllowed(GatewayError):
    default_status, default_code = 405, "method_not_allowed"


class Conflict(GatewayError):
    default_status, default_code = 409, "conflict"


class IdempotencyInProgress(Conflict):
    default_code = "idempotency_in_progress"


class DatasetSuspended(Conflict):
    default_code = "dataset_suspended"


class ProductSuspended(Conflict):
    default_code = "product_suspended"


class RegistrationRequired(Conflict):
    """The county requires registration and the product's code is missing, stale or revoked."""

    default_code = "registration_required"

    @property
    def registration_status(self) -> str | None:
        status = self.problem.get("registration_status")
        return status if isinstance(status, str) else None


class DatasetWithdrawn(GatewayError):
    default_status, default_code = 410, "dataset_withdrawn"


class ProductRetired(GatewayError):
    default_status, default_code = 410, "product_retired"


class AgreementEnded(GatewayError):
    default_status, default_code = 410, "agreement_ended"


class PayloadTooLarge(GatewayError):
    default_status, default_code = 413, "payload_too_large"


class UnsupportedMediaType(GatewayError):
    default_status, default_code = 415, "unsupported_media_type"


class Unprocessable(GatewayError):
    default_status, default_code = 422, "unprocessable"

    @property
    def reasons(self) -> tuple[str, ...]:
        """Every reason for the refusal (the gateway lists them all at once), else the detail."""
        raw = self.problem.get("reasons")
        return tuple(str(r) for r in raw) if isinstance(raw, list) else (self.detail,)


class PolicyViolation(Unprocessable):
    default_code = "policy_violation"


class PriceOverCap(Unprocessable):
    """A price above the fee cap the bureau set (a merchant's product draft, a bureau's change)."""

    default_code = "price_over_cap"


class IdempotencyKeyReused(Unprocessable):
    default_code = "idempotency_key_reused"


class _RetryAfter(GatewayError):
    @property
    def retry_after(self) -> float | None:
        """Seconds the gateway asked to wait (`Retry-After`), or None when it named none."""
        return parse_retry_after(self.headers.get("retry-after"))


class RateLimited(_RetryAfter):
    default_status, default_code = 429, "rate_limited"


class ReleaseFailed(GatewayError):
    default_status, default_code = 500, "release_failed"


class Unavailable(_RetryAfter):
    default_status, default_code = 503, "unavailable"


class ConnectionFailed(GatewayError):
    """No answer at all (refused, reset, timed out), after every retry."""

    default_code = "connection_failed"


_BY_CODE: dict[str, type[GatewayError]] = {
    cls.default_code: cls for cls in (
        InvalidRequest, InvalidQuery, Unauthorized, Forbidden, BudgetExhausted, NotFound, MethodNotAllowed,
        Conflict, IdempotencyInProgress, DatasetSuspended, ProductSuspended, DatasetWithdrawn, ProductRetired,
        AgreementEnded, PayloadTooLarge, UnsupportedMediaType, Unprocessable, PolicyViolation, PriceOverCap,
        RegistrationRequired, IdempotencyKeyReused, RateLimited, ReleaseFailed, Unavailable)
}
# RFC 6749 §5.2 error codes of the token endpoint.
_BY_CODE.update({
    "invalid_client": Unauthorized, "invalid_grant": Unauthorized, "unauthorized_client": Forbidden,
    "unsupported_grant_type": InvalidRequest, "invalid_scope": InvalidRequest,
})


def error_from_answer(status: int, headers: Mapping[str, str], body: bytes) -> GatewayError:
    """The exception for an error answer: problem+json, an OAuth error, or anything else."""
    problem = _json_object(body)
    if not problem:
        problem = {"status": status, "detail": body[:200].decode("utf-8", "replace").strip() or f"HTTP {status}"}
    code = problem.get("code") or problem.get("error")
    cls = _BY_CODE.get(code, GatewayError) if isinstance(code, str) else GatewayError
    return cls(problem, status=status, headers=headers)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body) if body else None
    except (ValueError, UnicodeDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """`Retry-After` as seconds from now: delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))

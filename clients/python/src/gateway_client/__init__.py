"""Python client for the county data gateway: `Client`, `AsyncClient`, `Answer` and the error tree.

    from gateway_client import Client
    with Client.from_credentials_file("state/demo/demo-credentials.json", "demo-bank") as gw:
        answer = gw.query("residents", "SELECT township, COUNT(*) AS n FROM residents GROUP BY township",
                          epsilon=0.5)
        print(answer.to_polars(intervals="halfwidth"))
"""

from gateway_client._protocol import RetryPolicy
from gateway_client.aio import AsyncClient
from gateway_client.answer import Answer
from gateway_client.client import Client
from gateway_client.errors import (
    AgreementEnded,
    BudgetExhausted,
    Conflict,
    ConnectionFailed,
    DatasetSuspended,
    DatasetWithdrawn,
    Forbidden,
    GatewayError,
    IdempotencyInProgress,
    IdempotencyKeyReused,
    InvalidQuery,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    PolicyViolation,
    PriceOverCap,
    ProductRetired,
    ProductSuspended,
    RateLimited,
    RegistrationRequired,
    ReleaseFailed,
    Unauthorized,
    Unavailable,
    Unprocessable,
    UnsupportedMediaType,
)
from gateway_client.receipts import ReceiptInvalid, verify_receipt

__version__ = "0.1.0"
__all__ = [
    "AgreementEnded",
    "Answer",
    "AsyncClient",
    "BudgetExhausted",
    "Client",
    "Conflict",
    "ConnectionFailed",
    "DatasetSuspended",
    "DatasetWithdrawn",
    "Forbidden",
    "GatewayError",
    "IdempotencyInProgress",
    "IdempotencyKeyReused",
    "InvalidQuery",
    "InvalidRequest",
    "MethodNotAllowed",
    "NotFound",
    "PayloadTooLarge",
    "PolicyViolation",
    "PriceOverCap",
    "ProductRetired",
    "ProductSuspended",
    "RateLimited",
    "ReceiptInvalid",
    "RegistrationRequired",
    "ReleaseFailed",
    "RetryPolicy",
    "Unauthorized",
    "Unavailable",
    "Unprocessable",
    "UnsupportedMediaType",
    "verify_receipt",
]

"""Typed failures of the eSIM Go API, mapped from HTTP statuses and transport errors."""

from __future__ import annotations


class EsimGoError(Exception):
    """Any eSIM Go failure; `status` is the HTTP status when there was one."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    def __str__(self) -> str:
        return f"{self.message} (HTTP {self.status})" if self.status else self.message


class AuthError(EsimGoError):
    """401/403: the API key is wrong, or the resource is not ours."""


class NotFoundError(EsimGoError):
    """404: no such bundle, order or eSIM."""


class BadRequestError(EsimGoError):
    """4xx that retrying will not fix; `message` is eSIM Go's own text."""


class InsufficientBalanceError(BadRequestError):
    """The organisation balance cannot pay for the order."""


class RateLimitedError(EsimGoError):
    """429 that outlasted our retries (or a call that is never retried)."""

    def __init__(
        self,
        retry_after: float | None,
        message: str = "Rate limit exceeded",
        status: int | None = 429,
    ) -> None:
        super().__init__(message, status)
        self.retry_after = retry_after


class SupplierUnavailableError(EsimGoError):
    """5xx, connection reset or timeout: eSIM Go may be fine again later."""


class OrderOutcomeUnknownError(SupplierUnavailableError):
    """A transaction whose outcome is unknown: reconcile via list_orders before ordering again."""

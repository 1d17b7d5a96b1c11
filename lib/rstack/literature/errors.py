"""Errors of the literature concern; each says which service, what happened and what to do next."""

from __future__ import annotations

from ..errors import RStackError


class LiteratureError(RStackError):
    """A literature command could not do what was asked (bad input, bad data, a refused check)."""


class ServiceError(LiteratureError):
    """A literature API failed: unreachable, timed out, rate limited past the retries, bad body."""

    def __init__(self, message: str, *, service: str, kind: str, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.service = service
        self.kind = kind  # unreachable | timeout | rate-limited | http-error | bad-body | api-error


class NotFoundError(ServiceError):
    """The service answered that the id does not exist (404, or an empty arXiv id_list feed)."""

    def __init__(self, message: str, *, service: str, hint: str | None = None):
        super().__init__(message, service=service, kind="not-found", hint=hint)


class OfflineMiss(ServiceError):
    """`--offline` was asked and the cache holds no answer for this request."""

    def __init__(self, message: str, *, service: str, hint: str | None = None):
        super().__init__(message, service=service, kind="offline-miss", hint=hint)

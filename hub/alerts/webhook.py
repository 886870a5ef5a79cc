"""Webhooks: alert notices posted as signed JSON to other systems.

Each notice is one ``POST`` of :meth:`Notice.json` to the webhook's URL, with
these headers:

- ``X-StreamFlow-Signature: t=<unix s>,v1=<hex>``: an HMAC-SHA256 with the
  webhook's secret over ``"<t>." + body``, the scheme Stripe made familiar.
  Signing the time with the body lets a receiver refuse a replayed request
  (:func:`verify_signature`).
- ``X-StreamFlow-Event``: ``<kind>.<change>``, e.g. ``alert.opened``.
- ``X-StreamFlow-Delivery``: the same for every attempt at one notice
  (:func:`delivery_id`), so that a receiver can drop a retried copy.

Errors: 2xx is delivered; 408, 429, 5xx and transport errors raise a
retryable :class:`HttpDeliveryError` (with the server's ``Retry-After`` in
``retry_after_s``); any other status raises a permanent one.

The URL may carry a token (many chat services put one in the path), so logs
name the webhook and its host, never the whole URL.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from dataclasses import replace
from email.utils import parsedate_to_datetime
from typing import Literal
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from hub.alerts.notice import DeliveryError, Notice
from protocol import codec

_LOGGER = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-StreamFlow-Signature"
EVENT_HEADER = "X-StreamFlow-Event"
DELIVERY_HEADER = "X-StreamFlow-Delivery"

Severity = Literal["info", "warning", "critical"]
#: Severity order, lowest first, for ``min_severity``.
SEVERITY_RANK: dict[str, int] = {"info": 0, "warning": 1, "critical": 2}

# RFC 9110 section 15: 408 and 429 say "try later" as much as a 5xx does.
_RETRYABLE_STATUS = frozenset({408, 429})
_USER_AGENT = "StreamFlow-Webhook/1"


class WebhookSettings(BaseModel):
    """One webhook: where notices are posted and the secret that signs them."""

    # The URL may hold a token and headers a credential: keep inputs out of
    # validation errors, which end up in logs.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    name: str = Field(
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="short name for logs and metrics (channel webhook:<name>)",
    )
    url: str = Field(description="http(s) URL the notices are posted to")
    secret: SecretStr = Field(description="HMAC key of X-StreamFlow-Signature")
    timeout_s: float = Field(default=10.0, gt=0, description="per-request time-out")
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="extra request headers (e.g. Authorization); never logged",
    )
    min_severity: Severity = Field(
        default="info", description="alerts below this severity are not posted"
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            # Only the scheme and host: the rest may be a token.
            raise ValueError(
                f"invalid webhook url {parts.scheme}://{parts.hostname or ''}...: "
                "expected http(s)://host/..."
            )
        return value

    @field_validator("secret")
    @classmethod
    def _check_secret(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise ValueError("empty webhook secret")
        return value


class HttpDeliveryError(DeliveryError):
    """A webhook refused a notice or could not be reached.

    Attributes:
        status_code: the HTTP status, or None for a transport error.
        retry_after_s: the server's ``Retry-After`` in seconds, if it sent one.
    """

    def __init__(
        self,
        message: str,
        retryable: bool = True,
        status_code: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message, retryable)
        self.status_code = status_code
        self.retry_after_s = retry_after_s


def delivery_id(notice: Notice) -> str:
    """A stable id of one notice: the same for every attempt to deliver it.

    Built from what makes the notice (kind, change, time, alert ids), so it is
    also the same after the hub restarts and rebuilds the notice.
    """
    key = "|".join(
        [notice.kind, notice.change, str(notice.at_us), *(a.id for a in notice.alerts)]
    )
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def sign(secret: str | bytes, body: bytes, timestamp: int) -> str:
    """The ``X-StreamFlow-Signature`` value of ``body`` sent at ``timestamp``.

    Args:
        secret: the webhook's secret.
        body: the exact request body.
        timestamp: send time, Unix seconds.
    """
    key = secret.encode() if isinstance(secret, str) else secret
    mac = hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_signature(
    secret: str | bytes | SecretStr,
    header: str,
    body: bytes,
    tolerance_s: float = 300,
    now: float | None = None,
) -> bool:
    """Tell whether a webhook request is genuine and recent; for receivers.

    Recompute the HMAC over the *raw* body bytes as received (not a re-encoded
    copy of the parsed JSON) and compare in constant time. Several ``v1=``
    entries are accepted, any one matching, so that a sender may sign with an
    old and a new secret while the secret is rotated.

    Args:
        secret: the webhook's secret.
        header: the ``X-StreamFlow-Signature`` value.
        body: the raw request body.
        tolerance_s: how far the signed time may be from ``now``; refuses
            replays of an old request.
        now: Unix seconds, default the current time.

    Returns:
        True if a signature matches and its time is within the tolerance;
        False otherwise, also for a malformed header (it never raises).
    """
    if isinstance(secret, SecretStr):
        secret = secret.get_secret_value()
    timestamp: int | None = None
    candidates: list[str] = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        # isascii: str.isdigit() also takes digits int() refuses, such as "²".
        if key == "t" and value.isascii() and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        return False
    expected = sign(secret, body, timestamp).rpartition("v1=")[2]
    # Compare every candidate so that timing does not tell which one matched.
    # Bytes: compare_digest refuses str with non-ASCII characters.
    want = expected.encode()
    matched = [
        hmac.compare_digest(want, c.encode("utf-8", "replace")) for c in candidates
    ]
    return any(matched)


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` (RFC 9110 section 10.2.3) as seconds from now, or None.

    The header is either a number of seconds or an HTTP date; a date in the
    past gives 0.
    """
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


class WebhookChannel:
    """Posts notices to one webhook with a reused :class:`httpx.Client`.

    Args:
        settings: the webhook.
        transport: an httpx transport, for tests of this module alone.
    """

    def __init__(
        self, settings: WebhookSettings, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.settings = settings
        self.name = f"webhook:{settings.name}"
        self._host = urlsplit(settings.url).hostname or ""
        self._client = httpx.Client(
            timeout=settings.timeout_s,
            headers={**settings.headers, "User-Agent": _USER_AGENT},
            # A redirect would resend a signed body to a place nobody configured.
            follow_redirects=False,
            transport=transport,
        )

    def accepts(self, notice: Notice) -> bool:
        """Whether the notice has an alert at or above ``min_severity``."""
        floor = SEVERITY_RANK[self.settings.min_severity]
        return any(SEVERITY_RANK.get(a.severity, 0) >= floor for a in notice.alerts)

    def body(self, notice: Notice) -> bytes:
        """The request body: the notice's JSON, alerts below the floor left out."""
        floor = SEVERITY_RANK[self.settings.min_severity]
        kept = tuple(
            a for a in notice.alerts if SEVERITY_RANK.get(a.severity, 0) >= floor
        )
        if len(kept) != len(notice.alerts):
            notice = replace(notice, alerts=kept)
        return codec.dumps(notice.json())

    def send(self, notice: Notice) -> None:
        """Post one notice, signed.

        Raises:
            HttpDeliveryError: the webhook answered other than 2xx, or could
                not be reached.
        """
        if not self.accepts(notice):
            _LOGGER.debug("webhook skipped, below min_severity name=%s", self.name)
            return
        body = self.body(notice)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(
                self.settings.secret.get_secret_value(), body, int(time.time())
            ),
            EVENT_HEADER: f"{notice.kind}.{notice.change}",
            DELIVERY_HEADER: delivery_id(notice),
        }
        try:
            response = self._client.post(
                self.settings.url, content=body, headers=headers
            )
        except httpx.TransportError as exc:
            # Not chained: the cause carries the request and its URL, which may
            # hold a token; the text keeps the reason with the URL cut out.
            detail = str(exc).replace(self.settings.url, self._host)
            raise HttpDeliveryError(
                f"webhook {self.settings.name} unreachable host={self._host}: "
                f"{type(exc).__name__} {detail}".rstrip(),
                retryable=True,
            ) from None
        self._check(response)
        _LOGGER.debug(
            "webhook delivered name=%s host=%s status=%d bytes=%d",
            self.settings.name,
            self._host,
            response.status_code,
            len(body),
        )

    def _check(self, response: httpx.Response) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        retryable = status in _RETRYABLE_STATUS or status >= 500
        raise HttpDeliveryError(
            f"webhook {self.settings.name} answered {status} host={self._host}",
            retryable=retryable,
            status_code=status,
            retry_after_s=retry_after_seconds(response.headers.get("Retry-After")),
        )

    def close(self) -> None:
        """Close the HTTP client and its connections."""
        self._client.close()

    def __enter__(self) -> WebhookChannel:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

"""Email: alert notices sent over SMTP with the standard library's smtplib.

One notice is one message: a single alert's state change, or a digest listing
every alert of a storm (a digest is how a storm reaches people without a
message per alert). Each message has a plain text body and an HTML
alternative, and these headers beside the usual ones:

- ``Message-ID``: made from the notice's delivery id, so a retried message
  has the same id and mail systems that de-duplicate by it keep one copy.
- ``References``: for a single alert, an id of the alert, so that mail
  clients thread its opening, acknowledgement and resolution together.
- ``Auto-Submitted: auto-generated`` (RFC 3834), so that autoresponders do
  not answer.

SMTP errors become :class:`DeliveryError`: a 5xx reply, a refused login, a
certificate that fails verification and a server lacking STARTTLS or AUTH are
permanent (trying again cannot succeed); a 4xx reply, a refused or dropped
connection and a time-out are retryable. The password is given only to
``SMTP.login`` and appears in no log line and no exception.
"""

from __future__ import annotations

import hashlib
import html
import logging
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, parseaddr
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from hub.alerts.notice import DeliveryError, Notice, alert_json
from hub.alerts.webhook import SEVERITY_RANK, delivery_id
from hub.storage.base import AlertRecord

_LOGGER = logging.getLogger(__name__)

#: The port each security mode uses when none is set (RFC 8314, RFC 6409).
DEFAULT_PORTS: dict[str, int] = {"none": 25, "starttls": 587, "tls": 465}
# Headers carry one line; a subject longer than this is cut (RFC 5322 2.1.1
# advises lines under 78 characters, folding handles the rest).
_SUBJECT_MAX = 200
# The alert fields a body lists, in this order, with their labels.
_FIELDS = (
    ("severity", "Severity"),
    ("state", "State"),
    ("device", "Device"),
    ("gateway", "Gateway"),
    ("metric", "Metric"),
    ("kind", "Kind"),
    ("opened", "Opened"),
    ("last_seen", "Last seen"),
    ("resolved", "Resolved"),
    ("occurrences", "Occurrences"),
    ("id", "Alert id"),
)


class EmailSettings(BaseModel):
    """The SMTP server and the people alerts are mailed to.

    Email is off until both ``host`` and ``recipients`` are set
    (:attr:`enabled`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(default="", description="SMTP server; empty turns email off")
    port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="SMTP port; default 25, 587 (starttls) or 465 (tls)",
    )
    security: Literal["none", "starttls", "tls"] = Field(
        default="starttls",
        description="none: plain; starttls: upgrade after connecting; "
        "tls: TLS from the start (implicit, port 465)",
    )
    username: str | None = Field(default=None, description="SMTP AUTH user name")
    password: SecretStr | None = Field(default=None, description="SMTP AUTH password")
    sender: str = Field(
        default="streamflow@localhost", description="From address of the messages"
    )
    recipients: list[str] = Field(
        default_factory=list, description="To addresses; empty turns email off"
    )
    timeout_s: float = Field(
        default=30.0, gt=0, description="time-out of each SMTP connection step"
    )
    subject_prefix: str = Field(
        default="[StreamFlow]", description="put before every subject"
    )
    ca_file: Path | None = Field(
        default=None, description="CA bundle of a private CA that signs the server"
    )
    verify: bool = Field(
        default=True,
        description="verify the server's certificate and name (off: tests only)",
    )

    @field_validator("sender")
    @classmethod
    def _check_sender(cls, value: str) -> str:
        _check_address(value)
        return value

    @field_validator("recipients")
    @classmethod
    def _check_recipients(cls, value: list[str]) -> list[str]:
        for address in value:
            _check_address(address)
        return value

    @field_validator("ca_file")
    @classmethod
    def _check_ca_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file {str(value)!r}")
        return value

    @property
    def enabled(self) -> bool:
        """Whether email is configured: a host and at least one recipient."""
        return bool(self.host and self.recipients)

    @property
    def effective_port(self) -> int:
        """The port to connect to: ``port``, or the security mode's default."""
        return self.port or DEFAULT_PORTS[self.security]


def _check_address(value: str) -> None:
    _name, address = parseaddr(value)
    if "@" not in address or any(c in value for c in "\r\n"):
        raise ValueError(f"invalid email address {value!r}: expected user@domain")


class EmailChannel:
    """Mails notices through one SMTP server, a connection per notice.

    Args:
        settings: the server, credentials and recipients.
    """

    # TODO: one connection per notice is fine at alert rates (storms arrive as
    # digests); keep it open between notices if a site ever needs more.

    name = "email"

    def __init__(self, settings: EmailSettings) -> None:
        self.settings = settings
        self._where = f"{settings.host}:{settings.effective_port}"

    def send(self, notice: Notice) -> None:
        """Mail one notice to every recipient.

        Raises:
            DeliveryError: the server refused it or could not be reached;
                ``retryable`` tells a 4xx or a network fault from a 5xx.
        """
        message = build_message(self.settings, notice)
        # Order matters: SMTPException and SSLError are both OSErrors.
        try:
            refused = self._transmit(message)
        except smtplib.SMTPException as exc:
            raise self._smtp_error(exc) from exc
        except ssl.SSLCertVerificationError as exc:
            raise DeliveryError(
                f"smtp {self._where} certificate not trusted: {exc.verify_message}",
                retryable=False,
            ) from exc
        except OSError as exc:  # refused, reset, time-out (TimeoutError)
            raise DeliveryError(
                f"smtp {self._where} unreachable: {type(exc).__name__} {exc}",
                retryable=True,
            ) from exc
        if refused:
            _LOGGER.warning(
                "email refused for some recipients server=%s refused=%s",
                self._where,
                sorted(refused),
            )
        _LOGGER.debug(
            "email sent server=%s subject=%r recipients=%d",
            self._where,
            message["Subject"],
            len(self.settings.recipients) - len(refused),
        )

    def _transmit(self, message: EmailMessage) -> dict[str, tuple[int, bytes]]:
        s = self.settings
        smtp: smtplib.SMTP
        if s.security == "tls":
            smtp = smtplib.SMTP_SSL(
                s.host, s.effective_port, timeout=s.timeout_s, context=self._context()
            )
        else:
            smtp = smtplib.SMTP(s.host, s.effective_port, timeout=s.timeout_s)
        with smtp:
            smtp.ehlo()
            if s.security == "starttls":
                smtp.starttls(context=self._context())
                # RFC 3207 section 4.2: forget what was learnt before TLS.
                smtp.ehlo()
            if s.username:
                password = s.password.get_secret_value() if s.password else ""
                smtp.login(s.username, password)
            return smtp.send_message(
                message, from_addr=parseaddr(s.sender)[1], to_addrs=self._to_addrs()
            )

    def _to_addrs(self) -> list[str]:
        return [address for _, address in getaddresses(self.settings.recipients)]

    def _context(self) -> ssl.SSLContext:
        s = self.settings
        context = ssl.create_default_context(
            cafile=str(s.ca_file) if s.ca_file else None
        )
        if not s.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _smtp_error(self, exc: smtplib.SMTPException) -> DeliveryError:
        # SMTPRecipientsRefused: every recipient was refused, each with a code.
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            codes = [code for code, _ in exc.recipients.values()]
            retryable = any(400 <= code < 500 for code in codes)
            return DeliveryError(
                f"smtp {self._where} refused every recipient: codes={sorted(codes)}",
                retryable=retryable,
            )
        if isinstance(exc, smtplib.SMTPResponseException):
            code = exc.smtp_code
            text = _reply_text(exc.smtp_error)
            what = "login" if isinstance(exc, smtplib.SMTPAuthenticationError) else ""
            # RFC 5321 section 4.2.1: 4yz is transient, 5yz permanent; a
            # connect error without a reply has code -1 and is a network fault.
            return DeliveryError(
                f"smtp {self._where} refused {what or 'message'}: {code} {text}",
                retryable=not 500 <= code < 600,
            )
        if isinstance(exc, smtplib.SMTPNotSupportedError):
            return DeliveryError(
                f"smtp {self._where} does not support it: {exc}", retryable=False
            )
        # SMTPServerDisconnected and the like: the connection broke.
        return DeliveryError(
            f"smtp {self._where} failed: {type(exc).__name__} {exc}", retryable=True
        )


def _reply_text(raw: bytes | str) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return " ".join(text.split())[:200]


def subject(settings: EmailSettings, notice: Notice) -> str:
    """The subject line, e.g. ``[StreamFlow] CRITICAL opened: mote-8 ...``.

    A digest names its highest severity and how many alerts it holds.
    """
    ranked = sorted(notice.alerts, key=lambda a: SEVERITY_RANK.get(a.severity, 0))
    severity = ranked[-1].severity.upper() if ranked else "INFO"
    if notice.kind == "digest":
        what = notice.title or "storm"
        text = f"{what} ({len(notice.alerts)} alerts)"
    else:
        text = notice.title or (ranked[-1].summary if ranked else "")
    line = f"{settings.subject_prefix} {severity} {notice.change}: {text}".strip()
    # A header is one line; a summary with a newline must not start a new one.
    line = " ".join(line.split())
    return line if len(line) <= _SUBJECT_MAX else line[: _SUBJECT_MAX - 1] + "…"


def build_message(settings: EmailSettings, notice: Notice) -> EmailMessage:
    """The message for one notice: headers, a text body and an HTML alternative."""
    message = EmailMessage()
    message["Subject"] = subject(settings, notice)
    message["From"] = settings.sender
    message["To"] = ", ".join(settings.recipients)
    message["Date"] = formatdate(notice.at_us / 1e6, usegmt=True)
    message["Message-ID"] = f"<{delivery_id(notice)}@streamflow>"
    message["Auto-Submitted"] = "auto-generated"
    message["X-StreamFlow-Event"] = f"{notice.kind}.{notice.change}"
    if notice.kind == "alert" and notice.alerts:
        thread = hashlib.sha256(notice.alerts[0].id.encode()).hexdigest()[:32]
        message["References"] = f"<alert-{thread}@streamflow>"
    rows = [alert_json(a) for a in notice.alerts]
    message.set_content(text_body(notice, rows))
    message.add_alternative(html_body(notice, rows), subtype="html")
    return message


def _heading(notice: Notice) -> str:
    if notice.kind == "digest":
        return (
            f"{len(notice.alerts)} alerts {notice.change}"
            + (f": {notice.title}" if notice.title else "")
            + f" (by {notice.actor})"
        )
    alert: AlertRecord | None = notice.alerts[0] if notice.alerts else None
    summary = alert.summary if alert else notice.title
    return f"Alert {notice.change}: {summary} (by {notice.actor})"


def text_body(notice: Notice, rows: list[dict[str, Any]]) -> str:
    """The plain text body: a heading, then each alert's fields and details."""
    lines = [_heading(notice), ""]
    for index, row in enumerate(rows, 1):
        if len(rows) > 1:
            lines.append(f"{index}. {row['summary']}")
        for key, label in _FIELDS:
            if row.get(key) not in (None, ""):
                lines.append(f"   {label}: {row[key]}")
        for key, value in sorted(row["details"].items()):
            lines.append(f"   {key}: {value}")
        lines.append("")
    return "\n".join(lines)


def html_body(notice: Notice, rows: list[dict[str, Any]]) -> str:
    """The HTML alternative: a heading and a table per alert, all escaped."""
    esc = html.escape
    parts = [f"<html><body><h2>{esc(_heading(notice))}</h2>"]
    for row in rows:
        parts.append(f"<h3>{esc(str(row['summary']))}</h3><table>")
        cells = [(label, row.get(key)) for key, label in _FIELDS]
        cells += sorted(row["details"].items())
        for label, value in cells:
            if value not in (None, ""):
                parts.append(
                    f"<tr><th align=left>{esc(str(label))}</th>"
                    f"<td>{esc(str(value))}</td></tr>"
                )
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)

"""Email delivery against a real SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import email
import email.policy
import logging
import ssl
from email.message import EmailMessage

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword
from pydantic import ValidationError

from hub.alerts.email import EmailChannel, EmailSettings, build_message, subject
from hub.alerts.notice import DeliveryError
from hub.alerts.webhook import delivery_id
from tests.hub.alerts._notices import alert_notice, digest_notice, make_alert
from tests.services import free_port

USER = "alerts"
PASSWORD = "s3cret-Pa55word"
# aiosmtpd warns when AUTH is allowed without STARTTLS; it cannot tell that an
# implicit TLS connection is encrypted, and the plain tests need it on purpose.
AUTH_WITHOUT_STARTTLS = pytest.mark.filterwarnings(
    "ignore:Requiring AUTH while not requiring TLS:UserWarning"
)
RECIPIENTS = ["ops@example.org", "Night Shift <night@example.org>"]


class Inbox:
    """An aiosmtpd handler that keeps every message, or answers with a reply."""

    def __init__(self, reply: str = "250 OK") -> None:
        self.envelopes: list[Envelope] = []
        self.reply = reply

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return self.reply

    def messages(self) -> list[EmailMessage]:
        out = []
        for envelope in self.envelopes:
            assert isinstance(envelope.content, bytes)  # decode_data is off
            parsed = email.message_from_bytes(
                envelope.content, policy=email.policy.default
            )
            assert isinstance(parsed, EmailMessage)
            out.append(parsed)
        return out


class Authenticator:
    """Checks the user name and password; records the mechanisms used."""

    def __init__(self) -> None:
        self.mechanisms: list[str] = []

    def __call__(self, server, session, envelope, mechanism, auth_data):
        self.mechanisms.append(mechanism)
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == USER.encode()
            and auth_data.password == PASSWORD.encode()
        )
        return AuthResult(success=ok, handled=False)


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture
def ca_file(ca, tmp_path):
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
def server_context(ca):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture
def smtp_server():
    """Start aiosmtpd servers on free loopback ports; stop them at the end."""
    controllers: list[Controller] = []

    def start(inbox: Inbox | None = None, **kwargs) -> tuple[Inbox, int]:
        inbox = inbox or Inbox()
        port = free_port()
        controller = Controller(inbox, hostname="127.0.0.1", port=port, **kwargs)
        controller.start()
        controllers.append(controller)
        return inbox, port

    yield start
    for controller in controllers:
        controller.stop()


def settings(port: int, **values) -> EmailSettings:
    base = {
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "sender": "StreamFlow <streamflow@example.org>",
        "recipients": RECIPIENTS,
        "timeout_s": 5,
    }
    base.update(values)
    return EmailSettings(**base)


def test_email_plain_alert_headers_and_body(smtp_server):
    """One alert is one message with its subject, recipients and facts."""
    inbox, port = smtp_server()
    notice = alert_notice()
    EmailChannel(settings(port)).send(notice)

    [envelope] = inbox.envelopes
    assert envelope.mail_from == "streamflow@example.org"
    assert envelope.rcpt_tos == ["ops@example.org", "night@example.org"]
    [message] = inbox.messages()
    assert message["Subject"] == (
        "[StreamFlow] CRITICAL opened: mote-8 temperature impossible value"
    )
    assert message["From"] == "StreamFlow <streamflow@example.org>"
    assert message["To"] == "ops@example.org, Night Shift <night@example.org>"
    assert message["Message-ID"] == f"<{delivery_id(notice)}@streamflow>"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-StreamFlow-Event"] == "alert.opened"
    assert message["References"].startswith("<alert-")
    text = message.get_body(("plain",)).get_content()
    for fact in ("mote-8 temperature impossible value", "Device: mote-8",
                 "Gateway: gw-1", "Metric: temperature", "value: -300.0",
                 "min: -60.0", "Alert id: alert-8"):  # fmt: skip
        assert fact in text
    html = message.get_body(("html",)).get_content()
    assert "<h3>mote-8 temperature impossible value</h3>" in html
    assert "<td>-300.0</td>" in html


def test_email_digest_lists_every_alert(smtp_server):
    """A digest is one message that names each of its alerts."""
    inbox, port = smtp_server()
    EmailChannel(settings(port)).send(digest_notice(7))

    [message] = inbox.messages()
    assert message["Subject"] == (
        "[StreamFlow] CRITICAL opened: gateway gw-1 storm (7 alerts)"
    )
    assert message["References"] is None
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    for i in range(7):
        assert f"{i + 1}. mote-{i} temperature impossible value" in text
        assert f"<h3>mote-{i} temperature impossible value</h3>" in html


def test_email_starttls_auth_login(smtp_server, server_context, ca_file):
    """STARTTLS with the private CA, then AUTH LOGIN with the right password."""
    auth = Authenticator()
    inbox, port = smtp_server(
        tls_context=server_context,
        require_starttls=True,
        authenticator=auth,
        auth_required=True,
        auth_exclude_mechanism=["PLAIN"],
    )
    channel = EmailChannel(
        settings(
            port,
            security="starttls",
            ca_file=ca_file,
            username=USER,
            password=PASSWORD,
        )
    )
    channel.send(alert_notice())

    assert auth.mechanisms == ["LOGIN"]
    assert len(inbox.envelopes) == 1


@AUTH_WITHOUT_STARTTLS
def test_email_implicit_tls_auth_plain(smtp_server, server_context, ca_file):
    """Implicit TLS (SMTP_SSL) with AUTH PLAIN delivers the message."""
    auth = Authenticator()
    inbox, port = smtp_server(
        ssl_context=server_context,
        authenticator=auth,
        auth_required=True,
        auth_require_tls=False,
    )
    channel = EmailChannel(
        settings(
            port, security="tls", ca_file=ca_file, username=USER, password=PASSWORD
        )
    )
    channel.send(alert_notice())

    assert auth.mechanisms == ["PLAIN"]
    assert inbox.messages()[0]["X-StreamFlow-Event"] == "alert.opened"


def test_email_untrusted_certificate_permanent(smtp_server, server_context):
    """A certificate from an unknown CA is refused, permanently."""
    inbox, port = smtp_server(tls_context=server_context, require_starttls=True)
    channel = EmailChannel(settings(port, security="starttls"))
    with pytest.raises(DeliveryError, match="certificate not trusted") as info:
        channel.send(alert_notice())
    assert info.value.retryable is False
    assert inbox.envelopes == []


def test_email_verify_off_accepts_unknown_ca(smtp_server, server_context):
    """With verify off (tests only) the unknown CA is accepted."""
    inbox, port = smtp_server(tls_context=server_context, require_starttls=True)
    EmailChannel(settings(port, security="starttls", verify=False)).send(alert_notice())
    assert len(inbox.envelopes) == 1


@AUTH_WITHOUT_STARTTLS
def test_email_wrong_password_permanent_and_never_shown(smtp_server, caplog):
    """A refused login is permanent; the password is in no message or log."""
    caplog.set_level(logging.DEBUG)
    wrong = "wr0ng-Secret-xyz"
    inbox, port = smtp_server(
        authenticator=Authenticator(), auth_required=True, auth_require_tls=False
    )
    configured = settings(port, username=USER, password=wrong)
    with pytest.raises(DeliveryError, match="refused login: 535") as info:
        EmailChannel(configured).send(alert_notice())

    assert info.value.retryable is False
    assert inbox.envelopes == []
    shown = [str(info.value), repr(info.value), caplog.text, repr(configured)]
    shown.append(str(configured.model_dump()))
    assert all(wrong not in s for s in shown)


def test_email_server_down_retryable():
    """Nothing listening on the port is a retryable error."""
    channel = EmailChannel(settings(free_port(), timeout_s=2))
    with pytest.raises(DeliveryError, match="unreachable") as info:
        channel.send(alert_notice())
    assert info.value.retryable is True


@pytest.mark.parametrize(
    ("reply", "retryable"),
    [("451 4.3.0 try again later", True), ("554 5.6.0 message refused", False)],
)
def test_email_data_reply_maps_retryable(smtp_server, reply, retryable):
    """A 4xx reply to DATA is retryable, a 5xx reply permanent."""
    _, port = smtp_server(Inbox(reply))
    with pytest.raises(DeliveryError, match=reply[:3]) as info:
        EmailChannel(settings(port)).send(alert_notice())
    assert info.value.retryable is retryable


def test_email_recipient_refused_permanent(smtp_server):
    """A server refusing every recipient (5xx) is a permanent error."""

    class Refuse(Inbox):
        async def handle_RCPT(self, server, session, envelope, address, options):
            return "550 5.1.1 no such user"

    _, port = smtp_server(Refuse())
    with pytest.raises(DeliveryError, match="refused every recipient") as info:
        EmailChannel(settings(port)).send(alert_notice())
    assert info.value.retryable is False


def test_email_subject_stays_one_line():
    """A summary with line breaks cannot start a new header line."""
    alert = make_alert(summary="bad\r\nBcc: victim@example.org")
    line = subject(settings(25), alert_notice(alert))
    assert line == "[StreamFlow] CRITICAL opened: bad Bcc: victim@example.org"
    message = build_message(settings(25), alert_notice(alert))
    assert message["Bcc"] is None


@pytest.mark.parametrize(
    ("security", "port"), [("none", 25), ("starttls", 587), ("tls", 465)]
)
def test_email_settings_default_port(security, port):
    """Without a port, each security mode uses its standard one."""
    configured = EmailSettings(host="mail", security=security, recipients=["a@b.c"])
    assert configured.effective_port == port
    assert configured.enabled


@pytest.mark.parametrize(
    "values",
    [
        {"recipients": ["not-an-address"]},
        {"sender": "nobody"},
        {"security": "ssl"},
        {"port": 0},
    ],
)
def test_email_settings_bad(values):
    """A bad address, security mode or port fails at load."""
    with pytest.raises(ValidationError):
        EmailSettings(host="mail", **values)


def test_email_settings_disabled_without_recipients():
    """Email is off until a host and a recipient are set."""
    assert not EmailSettings().enabled
    assert not EmailSettings(host="mail").enabled

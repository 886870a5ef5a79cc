"""Topic ACLs of broker principals, and their Mosquitto files.

One table of rules (:func:`rules_for`) is enforced by the embedded amqtt
broker (``hub/_amqtt_acl.py``, through :func:`allowed`) and written out for
Mosquitto (:func:`mosquitto_acl`, :func:`mosquitto_passwords`), so that a
site gets the same rights on either broker:

| principal | write (publish) | read (subscribe, receive) |
| --- | --- | --- |
| gateway ``G`` | ``sf/v1/gw/G/up/#`` | ``sf/v1/gw/G/down/#`` |
| device ``D`` | ``sf/v1/dev/D/up/telemetry`` | nothing |
| service | ``sf/v1/#`` | ``sf/v1/#`` and the adapter filters |

Services (the hub, the monitor, the API) are the hub's own processes: they
read every gateway's uplink, acknowledge and send downlinks to every
gateway, and publish events, alerts and figures. The adapter filters
(setting ``adapters``, e.g. ``tele/+/SENSOR``) are what the hub reads of
sensors that follow other conventions.

The Mosquitto ACL file names each principal with a ``user`` block rather
than a ``pattern`` with ``%u``: a pattern applies to every user, so a device
named like a gateway would get that gateway's topics.

A subscription filter is allowed only if every topic it can match is
allowed (:func:`filter_within`); on top of that a message is delivered only
if its topic is readable, as Mosquitto checks both too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from hub.security.broker_creds import BrokerCredential, PrincipalKind
from protocol.const import TOPIC_ROOT
from protocol.topics import matches


class Access(StrEnum):
    """What a rule lets a principal do on the topics of its filter."""

    READ = "read"
    WRITE = "write"
    READWRITE = "readwrite"


@dataclass(frozen=True, slots=True)
class Rule:
    """One ACL line: an access on a topic filter."""

    access: Access
    filter: str

    def grants(self, access: Access) -> bool:
        """Whether this rule's access includes ``access`` (read or write)."""
        return self.access is Access.READWRITE or self.access is access


def rules_for(cred: BrokerCredential, service_reads: Sequence[str] = ()) -> list[Rule]:
    """The rules of one principal (the table in the module docstring)."""
    if cred.kind is PrincipalKind.GATEWAY:
        base = f"{TOPIC_ROOT}/gw/{cred.ident}"
        return [Rule(Access.WRITE, f"{base}/up/#"), Rule(Access.READ, f"{base}/down/#")]
    if cred.kind is PrincipalKind.DEVICE:
        return [Rule(Access.WRITE, f"{TOPIC_ROOT}/dev/{cred.ident}/up/telemetry")]
    rules = [Rule(Access.READWRITE, f"{TOPIC_ROOT}/#")]
    for f in dict.fromkeys(service_reads):
        if not filter_within(f, f"{TOPIC_ROOT}/#"):
            rules.append(Rule(Access.READ, f))
    return rules


def filter_within(inner: str, outer: str) -> bool:
    """Whether every topic ``inner`` matches is matched by ``outer``.

    Both are MQTT subscription filters; ``inner`` may be a plain topic.
    """
    i_parts, o_parts = inner.split("/"), outer.split("/")
    for n, o in enumerate(o_parts):
        if o == "#":
            return True
        if n >= len(i_parts):
            return False
        i = i_parts[n]
        if i == "#":
            return False  # inner goes deeper than outer allows here
        if o != "+" and o != i:
            return False  # a literal outer level needs the same literal
    return len(i_parts) == len(o_parts)


def allowed(rules: Iterable[Rule], access: Access, topic: str) -> bool:
    """Whether ``rules`` allow ``access`` on a topic (or, to read, a filter)."""
    for rule in rules:
        if not rule.grants(access):
            continue
        if access is Access.READ and filter_within(topic, rule.filter):
            return True
        if access is Access.WRITE and matches(rule.filter, topic):
            return True
    return False


def mosquitto_passwords(creds: Iterable[BrokerCredential]) -> str:
    """A Mosquitto ``password_file`` of the active credentials."""
    lines = [f"{c.username}:{c.secret_hash}" for c in creds if c.active]
    return "".join(line + "\n" for line in lines)


def mosquitto_acl(
    creds: Iterable[BrokerCredential], service_reads: Sequence[str] = ()
) -> str:
    """A Mosquitto ``acl_file`` with the rules of every active credential.

    Nothing is granted outside the ``user`` blocks: Mosquitto denies what no
    rule allows, anonymous clients included.
    """
    out = [
        "# StreamFlow broker ACL, written by `streamflow admin export-mosquitto`",
        "# from the credential registry; edits are lost at the next export.",
    ]
    for cred in creds:
        if not cred.active:
            continue
        out += ["", f"# {cred.kind} {cred.ident}", f"user {cred.username}"]
        out += [f"topic {r.access} {r.filter}" for r in rules_for(cred, service_reads)]
    return "\n".join(out) + "\n"

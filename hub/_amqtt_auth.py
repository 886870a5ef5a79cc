"""An amqtt authentication plugin that keeps persistent sessions for everyone.

amqtt 0.12 marks every client admitted by its AnonymousAuthPlugin as
anonymous, and it never queues QoS 1 messages for an anonymous session while
the client is away (``Broker._run_broadcast``). That silently breaks the
delivery contract: acks for a reconnecting edge agent, and batches for a
restarting hub, would be dropped. This plugin admits every client, as the
embedded broker on loopback does, without that mark.
"""

from __future__ import annotations

from dataclasses import dataclass

from amqtt.plugins.base import BaseAuthPlugin
from amqtt.session import Session


class OpenAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]  # amqtt is untyped
    """Admit every client; its session persists if it asked for one."""

    # Used with broker_auth = off only; hub/_amqtt_acl.py checks credentials
    # and topic ACLs when it is on (and keeps sessions non-anonymous too).

    @dataclass
    class Config:
        """No options: every client is admitted."""

    async def authenticate(self, *, session: Session) -> bool:
        """Admit the client and leave its session non-anonymous."""
        session.is_anonymous = False
        return True

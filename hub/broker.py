"""The embedded MQTT broker (amqtt), for a single box and for tests.

amqtt speaks MQTT 3.1.1 only; sites that need MQTT 5 shared subscriptions run
Mosquitto or EMQX instead (README, "Configuration": ``shared_group``). What
amqtt loses that Mosquitto does not is in the README, "Delivery guarantees"
(known limits).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hub.config import HubSettings

_LOGGER = logging.getLogger(__name__)


def broker_config(
    host: str = "127.0.0.1", port: int = 1883, settings: HubSettings | None = None
) -> dict[str, Any]:
    """The amqtt configuration StreamFlow runs with.

    Persistent sessions are kept for an hour so that a restarting edge agent or
    hub finds its QoS 1 messages waiting. With ``settings.broker_auth = on``
    every client logs in with a broker credential of ``settings.db`` and is
    kept to its topics (hub/_amqtt_acl.py); otherwise every client is admitted.
    """
    # See hub/_amqtt_auth.py: amqtt's own anonymous plugin drops QoS 1
    # messages for offline persistent sessions.
    plugins: dict[str, Any] = {"hub._amqtt_auth.OpenAuthPlugin": {}}
    if settings is not None and settings.broker_auth == "on":
        plugins = {
            "hub._amqtt_acl.StoreAclPlugin": {
                "db": settings.db,
                "cache_ttl_s": float(settings.broker_auth_cache_s),
                "service_reads": [a.filter for a in settings.adapters],
            }
        }
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "session_expiry_interval": 3600,
        "plugins": plugins,
    }


async def serve(
    host: str = "127.0.0.1", port: int = 1883, settings: HubSettings | None = None
) -> None:
    """Run the broker until SIGINT or SIGTERM (``settings``: its auth)."""
    from amqtt.broker import Broker

    broker = Broker(broker_config(host, port, settings))
    await broker.start()
    auth = settings.broker_auth if settings is not None else "off"
    _LOGGER.info("broker listening host=%s port=%d auth=%s", host, port, auth)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    _LOGGER.info("broker stopping")
    await broker.shutdown()


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m hub.broker [--host H] [--port P]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m hub.broker")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("amqtt", "transitions"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # broker_auth and the store come from the environment and
    # STREAMFLOW_CONFIG, as for every part `streamflow up` starts.
    from hub._errors import ConfigError
    from hub.config import load_settings

    try:
        settings = load_settings()
    except ConfigError as exc:
        raise SystemExit(f"hub.broker: error: {exc}") from None
    asyncio.run(serve(args.host, args.port, settings))


if __name__ == "__main__":
    main()

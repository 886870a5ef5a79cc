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
from typing import Any

_LOGGER = logging.getLogger(__name__)


def broker_config(host: str = "127.0.0.1", port: int = 1883) -> dict[str, Any]:
    """The amqtt configuration StreamFlow runs with.

    Persistent sessions are kept for an hour so that a restarting edge agent or
    hub finds its QoS 1 messages waiting.
    """
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "session_expiry_interval": 3600,
        # See hub/_amqtt_auth.py: amqtt's own anonymous plugin drops QoS 1
        # messages for offline persistent sessions.
        "plugins": {"hub._amqtt_auth.OpenAuthPlugin": {}},
    }


async def serve(host: str = "127.0.0.1", port: int = 1883) -> None:
    """Run the broker until SIGINT or SIGTERM."""
    from amqtt.broker import Broker

    broker = Broker(broker_config(host, port))
    await broker.start()
    _LOGGER.info("broker listening host=%s port=%d", host, port)
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
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()

"""The demo child of ``streamflow up --demo``: a replayed gateway until SIGTERM.

``python -m hub._demo --mqtt-url URL --data-dir DIR --speedup N`` runs
:func:`simulators.replay.run_demo`, which replays the shipped Intel lab slices
through a simulated gateway running the real edge agent, the slice with mote
8's glitch first: at the default speed-up of 60 the monitor opens its first
real alert about half a minute after ``up`` starts (tests/hub/test_up.py).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from pathlib import Path
from types import FrameType

_LOGGER = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> None:
    """Run the demo replay until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m hub._demo")
    parser.add_argument("--mqtt-url", required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--speedup", type=float, default=60.0)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)

    from simulators.replay import run_demo

    args.data_dir.mkdir(parents=True, exist_ok=True)
    _LOGGER.info("demo starting broker=%s speedup=%g", args.mqtt_url, args.speedup)
    # The broker login of the demo's gateway, when the broker checks logins
    # (``streamflow up`` with broker_auth on): from the environment, never argv.
    login = {
        key: os.environ[var]
        for key, var in (
            ("username", "STREAMFLOW_DEMO_USERNAME"),
            ("password", "STREAMFLOW_DEMO_PASSWORD"),
        )
        if var in os.environ
    }
    run_demo(args.mqtt_url, args.data_dir, args.speedup, stop, login)
    _LOGGER.info("demo stopped")


if __name__ == "__main__":
    main()

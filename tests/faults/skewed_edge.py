"""Run ``streamflow-edge`` with its wall clock moved: a gateway whose clock is off.

``python -m tests.faults.skewed_edge OFFSET_S [streamflow-edge options]``

The agent reads the wall clock only through :func:`protocol.validate.now_us`
(receive times, the stamp of readings without a time, batch send times, the
future-skew check, its state messages). It is replaced here, in every module
already loaded and before the agent's own modules are imported, by the true
clock plus ``OFFSET_S`` seconds (libfaketime is not installed on the CI box;
this moves exactly the clock the agent uses). Monotonic time is untouched,
as it is on a real gateway whose clock was set wrong.
"""

from __future__ import annotations

import sys

import protocol.validate


def main() -> None:
    """Shift the clock, then hand the remaining arguments to the agent's CLI."""
    offset_us = int(float(sys.argv[1]) * 1_000_000)
    true_now_us = protocol.validate.now_us

    def skewed_now_us() -> int:
        return true_now_us() + offset_us

    for module in list(sys.modules.values()):
        if getattr(module, "now_us", None) is true_now_us:
            module.now_us = skewed_now_us  # type: ignore[attr-defined]
    from edge_agent.cli import main as edge_main

    sys.argv = ["streamflow-edge", *sys.argv[2:]]
    edge_main()


if __name__ == "__main__":
    main()

"""The hub as the benchmarks run it: ``streamflow hub`` plus a commit log.

``python -m benchmarks._hubproc --mqtt-url URL --db URL --data-dir DIR
--commit-log FILE`` runs the real :class:`hub.service.HubService` (the same
settings, store and pipeline as ``streamflow hub``) in its own process, so
that psutil sees its CPU and memory alone, and adds one ``on_committed``
hook (:class:`benchmarks._commitlog.CommitRecorder`). It prints ``ready``
on stdout once subscribed, and stops cleanly on SIGTERM (drain, commit, ack).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from benchmarks._commitlog import CommitRecorder
from hub import const
from hub.config import load_settings
from hub.service import HubService, open_checked_store

_LOGGER = logging.getLogger(__name__)


def run(mqtt_url: str, db: str, data_dir: Path, commit_log: Path) -> bool:
    """Run the hub until SIGTERM or SIGINT.

    Returns:
        Whether the stop drained everything.

    Raises:
        hub._errors.HubError: the store or the broker cannot be reached.
    """
    settings = load_settings(
        None, mqtt_url=mqtt_url, db=db, data_dir=data_dir, client_id="sf-bench-hub"
    )
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    store = open_checked_store(settings)
    data_dir.mkdir(parents=True, exist_ok=True)
    recorder = CommitRecorder(commit_log)
    try:
        service = HubService(
            settings, store, status_path=data_dir / const.STATUS_FILE_NAME
        )
        service.pipeline.on_committed.append(recorder)
        recorder.start()
        service.start()
        print("ready", flush=True)
        stop.wait()
        return service.stop()
    finally:
        recorder.stop()
        store.close()


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m benchmarks._hubproc``."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks._hubproc")
    parser.add_argument("--mqtt-url", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--commit-log", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    drained = run(args.mqtt_url, args.db, args.data_dir, args.commit_log)
    sys.exit(0 if drained else 1)


if __name__ == "__main__":
    main()

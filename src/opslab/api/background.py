"""The responder's autonomous loop inside ``opslab serve`` (``OPSLAB_RESPONDER_ENABLED=true``): a thread
that first resumes any incident a crash interrupted, then polls the target every poll interval."""

from __future__ import annotations

import logging
import threading

from opslab.runtime import Runtime

log = logging.getLogger("opslab.api")


class ResponderLoop:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="opslab-responder", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                responder = self.runtime.responder()
            except Exception as exc:  # noqa: BLE001 - e.g. the sandbox is not up yet: try again later
                log.warning("responder not started: %s", exc)
                self._stop.wait(self.runtime.settings.responder_poll_interval_s)
                continue
            try:
                resumed = responder.resume_unfinished()
                if resumed:
                    log.info("resumed %d interrupted incident(s)", len(resumed))
            except Exception:  # noqa: BLE001 - one bad checkpoint must not stop the watch
                log.exception("resuming interrupted incidents failed")
            log.info("responder watching %s", responder.probe)
            responder.watch(self._stop)
            return

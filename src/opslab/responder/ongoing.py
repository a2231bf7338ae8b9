"""One incident per fault: while the fault behind an incident that ended unresolved (escalated, or
waiting for a human) goes on, every later poll belongs to that incident. It gets a step when the
symptoms change (and now and then while they last), never a sibling; once the target has been healthy
for ``quiet_polls`` polls in a row the fault is over, and the next one opens an incident of its own."""

from __future__ import annotations

from opslab.responder.model import Assessment, Incident

REMIND_EVERY = 60  # polls: an unchanged ongoing fault is noted on its incident this often


class Ongoing:
    def __init__(self, quiet_polls: int) -> None:
        self.quiet_polls = quiet_polls
        self.incident_id: str | None = None
        self._healthy = 0
        self._polls = 0
        self._signature: tuple[str, ...] = ()

    def hold(self, incident: Incident) -> None:
        """After a response: an incident not resolved keeps its fault."""
        if incident.status == "resolved":
            self.incident_id = None
            return
        self.incident_id, self._healthy, self._polls = incident.id, 0, 0
        self._signature = tuple(sorted(incident.signals))

    def see(self, assessment: Assessment) -> str | None:
        """What to note on the held incident about this poll, if anything (the poll opens nothing)."""
        if self.incident_id is None:
            return None
        self._polls += 1
        if not assessment.anomalous:
            self._healthy += 1
            if self._healthy >= self.quiet_polls:
                self.incident_id = None
                return f"the target has been healthy for {self._healthy} polls: this fault is over"
            return None
        self._healthy = 0
        signature = tuple(sorted(assessment.signals))
        if signature != self._signature or self._polls % REMIND_EVERY == 0:
            self._signature = signature
            return f"fault still going on after {self._polls} polls: {'; '.join(assessment.reasons)}"
        return None

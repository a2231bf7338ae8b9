"""Names both sides of an HTTP conversation agree on (a client here, a server there), so neither imports
the other to learn them."""

from __future__ import annotations

# A target reports how long it worked on a request, so a load generator can tell its own overhead apart.
SERVER_TIME_HEADER = "X-Server-Time-Ms"

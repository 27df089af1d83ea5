"""One failure vocabulary for every daemon: *temporary* or *refused*.

- `Temporary` is raised when the relay cannot answer now (the store is down,
  a disk error, a DNS timeout). The peer must retry. Each wire maps it once:
  dict `F`, SMTP `451 4.3.0`, HTTP 503. `logged` is true when the cause was
  already logged where it happened (an outage the store reports once), so the
  edge does not log every request again.
- `Refused` is a definite "no" with a stable `reason` (for metrics and logs)
  and a human `text`. The domain *returns* it as a value; each wire turns it
  into its own reply (dict `N`, SMTP 5xx, HTTP 4xx) at the edge.

Domain code never builds wire strings; wire code never decides policy.
"""

from dataclasses import dataclass


class Temporary(Exception):
    """Cannot answer now; retry later. str() is safe to log (no addresses)."""

    logged = False


@dataclass(frozen=True)
class Refused:
    """A definite refusal: `reason` is a short stable token, `text` for humans."""

    reason: str
    text: str = ""

    def __str__(self) -> str:
        return self.text or self.reason

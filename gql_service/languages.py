"""The languages this service speaks, and the choice of one from ``Accept-Language``."""

from __future__ import annotations

LANGUAGES = ("en", "lv")
DEFAULT = "en"


def negotiate(header: str | None) -> str:
    """The best of LANGUAGES for an Accept-Language header (RFC 9110 q-values); else DEFAULT."""
    if not header:
        return DEFAULT
    best, best_q = DEFAULT, 0.0
    for item in header.split(",")[:32]:
        tag, _, params = item.strip().partition(";")
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                continue
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and q > best_q:
            best, best_q = primary, q
    return best

"""eSIM Go routes as its API documents them, for labelling metrics: a concrete path
("/esims/8944…/bundles") becomes its template ("/esims/{iccid}/bundles"), so one label value
never stands for one ICCID or order."""

from __future__ import annotations

import re

# The v2.4 paths this client calls (esim_go_schema_v2_4.yaml), literal ones before templated.
DOCUMENTED = (
    "/catalogue",
    "/catalogue/bundle/{name}",
    "/organisation",
    "/orders",
    "/orders/{orderReference}",
    "/esims/assignments",
    "/esims/{iccid}",
    "/esims/{iccid}/bundles",
    "/esims/{iccid}/bundles/{name}",
    "/esims/{iccid}/bundles/{name}/assignments/{assignmentId}",
    "/esims/{iccid}/compatible/{bundle}",
    "/esims/{iccid}/history",
    "/esims/{iccid}/location",
    "/esims/{iccid}/refresh",
    "/networks",
)
OTHER = "other"
_PATTERNS = [
    (re.compile("^" + re.sub(r"\{[A-Za-z]+\}", "[^/]+", path) + "$"), path) for path in DOCUMENTED
]


def endpoint(method: str, path: str) -> str:
    """ "GET /esims/{iccid}" for GET /esims/8944…; "GET other" for a path not documented."""
    for pattern, template in _PATTERNS:
        if pattern.match(path):
            return f"{method} {template}"
    return f"{method} {OTHER}"

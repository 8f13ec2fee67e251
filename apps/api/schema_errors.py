"""drf-spectacular postprocessing hook: the error statuses every operation can answer, documented once.

The views raise DRF's exceptions (400 validation, 401 authentication, 404, 413 body too large, 415 content type,
429 throttled); writing each into every @extend_schema would drown the operations. The hook adds the ones an
operation can actually produce, judged from its shape, unless the view documents that status itself.
"""

from __future__ import annotations

from typing import Any

ERROR_SCHEMA = {
    "type": "object",
    "description": "An error: `detail` says what is wrong, or each field of the input names its problems.",
    "additionalProperties": True,
}
# Probes are never throttled (apps.api.views.HealthApi and the compatibility surface's health).
UNTHROTTLED_SUFFIXES = ("/health", "/health/")
# Logins take no token but refuse a wrong password with 401.
LOGIN_SUFFIXES = ("/auth/login", "/auth/login/")


def _response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def error_responses_add(result: dict, generator: Any, request: Any, public: bool) -> dict:
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            wanted: dict[str, str] = {}
            parameters = operation.get("parameters", [])
            writes = method in ("post", "put", "patch", "delete")  # a body may come (DRF parses one on DELETE too)
            if writes or operation.get("requestBody") or any(p.get("in") in ("query", "path") for p in parameters):
                wanted["400"] = "Invalid input: the body names each field at fault."
                # What the input names (a symbol, a rule, a webhook) may not exist.
                wanted["404"] = "No such object, e.g. an unknown symbol."
            if any(requirement for requirement in operation.get("security", []) if requirement) or path.endswith(
                LOGIN_SUFFIXES
            ):
                wanted["401"] = "Missing, malformed or expired token (at login: wrong email or password)."
            if writes or operation.get("requestBody"):
                wanted["413"] = "Request body over the upload limit."
                wanted["415"] = "Request body is not JSON."
            if not path.endswith(UNTHROTTLED_SUFFIXES):
                wanted["429"] = "Rate limit reached; retry after the Retry-After header's seconds."
            for code, description in wanted.items():
                operation["responses"].setdefault(code, _response(description))
            # drf-spectacular documents every DELETE as "204 No response body"; the views that answer a deletion
            # with the resource's new state (a watchlist, {"success": true}) do so with 200 and a JSON object.
            if method == "delete" and "200" not in operation["responses"]:
                operation["responses"]["200"] = {
                    "description": "Deleted; the body tells the new state.",
                    "content": {"application/json": {"schema": {"type": "object", "additionalProperties": True}}},
                }
    return result

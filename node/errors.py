"""Errors of the commune node, each with the HTTP status the edges render it with.

    NodeError (400)
    ├── ValidationFailed (422)       a form or API field is wrong; carries {field: message}
    ├── NotFound (404)               no such dossier, user, procedure, file
    ├── PermissionDenied (403)       the user's role does not allow the action
    ├── TransitionNotAllowed (409)   the dossier's status does not allow the action
    ├── PayloadTooLarge (413)        an upload over the size limit
    └── NotInitialised (500)         the data folder has no node (run `motcua node init`)

Messages are in Vietnamese with an English twin; the edge picks the user's language.
"""

from __future__ import annotations


class NodeError(Exception):
    http_status = 400
    code = "bad_request"

    def __init__(self, vi: str, en: str | None = None, *, fields: dict[str, str] | None = None):
        super().__init__(en or vi)
        self.vi = vi
        self.en = en or vi
        self.fields = fields or {}

    def message(self, lang: str = "vi") -> str:
        return self.en if lang == "en" else self.vi


class ValidationFailed(NodeError):
    http_status = 422
    code = "validation_failed"


class NotFound(NodeError):
    http_status = 404
    code = "not_found"


class PermissionDenied(NodeError):
    http_status = 403
    code = "forbidden"


class TransitionNotAllowed(NodeError):
    http_status = 409
    code = "transition_not_allowed"


class PayloadTooLarge(NodeError):
    http_status = 413
    code = "payload_too_large"


class NotInitialised(NodeError):
    http_status = 500
    code = "not_initialised"

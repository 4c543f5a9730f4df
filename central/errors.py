"""Errors of the hub, each carrying the HTTP status and code the edges render it with.

    HubError (400 bad_request)
    ├── RequestRefused (403)        a signed request that does not authenticate: bad signature, time outside
    │                               the window, another node's id, a relay of other nodes' changes
    ├── TokenRefused (403)          an enrollment token that is unknown, used, expired or for another unit
    ├── AlreadyEnrolled (409)       enrolling a node id the registry already holds
    ├── ProtocolNotAccepted (400)   an X-Motcua-Protocol version this hub does not speak
    ├── NotFound (404)              no such node, fork, file
    ├── FileRefused (409)           a chunk at the wrong offset, past the file's size, for a file nobody mentions
    ├── FileHashMismatch (422)      the uploaded bytes do not hash to the name they were sent under
    └── Overloaded (503)            too many pushes in flight; carries Retry-After seconds

Two refusals of pushed changes are SyncErrors (they name the change, like the core's):

    OutOfScope (403 out_of_scope)               a change writing data of a unit outside the node's scope
    RegistryWriteRefused (403 registry_write)   a node writing the key registry (only the hub may)

The sync core's own errors (node.sync.errors.SyncError and node.sync.ingest's UnknownNode, NodeRevoked,
NodeQuarantined, ForkDetected) travel next to these; both kinds carry `http_status`, `code` and a message.
"""

from __future__ import annotations

from node.sync.errors import SyncError


class HubError(Exception):
    http_status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class RequestRefused(HubError):
    http_status = 403
    code = "forbidden"


class TokenRefused(HubError):
    http_status = 403
    code = "token_refused"


class AlreadyEnrolled(HubError):
    http_status = 409
    code = "already_enrolled"


class ProtocolNotAccepted(HubError):
    code = "protocol_not_accepted"


class NotFound(HubError):
    http_status = 404
    code = "not_found"


class FileRefused(HubError):
    http_status = 409
    code = "file_refused"


class FileHashMismatch(HubError):
    http_status = 422
    code = "file_hash_mismatch"


class Overloaded(HubError):
    http_status = 503
    code = "overloaded"

    def __init__(self, message: str, *, retry_after: int = 2):
        super().__init__(message)
        self.retry_after = retry_after


class OutOfScope(SyncError):
    http_status = 403
    code = "out_of_scope"


class RegistryWriteRefused(SyncError):
    http_status = 403
    code = "registry_write_refused"

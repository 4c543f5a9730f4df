"""The hub's machine API as an OpenAPI 3.1 document, served at GET /api/v1/openapi.json."""

from __future__ import annotations

from typing import Any

from node import __version__
from node.sync import protocol

ZSTD = protocol.MEDIA_TYPE
SIGNED = [{"nodeSignature": []}]


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required or list(props)}


def _error(description: str) -> dict[str, Any]:
    schema = {"$ref": "#/components/schemas/Error"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _packed(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {ZSTD: {"schema": schema}}}


COMMON_ERRORS = {
    "400": _error("Garbled or truncated body, bad cursor, protocol version not accepted, invalid field"),
    "401": _error("Request not signed (X-Motcua-Node, X-Motcua-Time, X-Motcua-Signature missing)"),
    "403": _error("unknown_node, node_revoked, node_quarantined (push), bad_signature, clock_outside_window, "
                  "node_mismatch (another node_id than the signer), relay_not_allowed (a relayed origin whose "
                  "scope does not include the pushing node's unit), out_of_scope, registry_write_refused"),
    "413": _error("Body over MAX_BODY compressed bytes or inflating past MAX_INFLATED"),
}


def document() -> dict[str, Any]:
    """The OpenAPI document (built on each call; small)."""
    change = {"$ref": "#/components/schemas/Change"}
    digest = _obj({"count": {"type": "integer"}, "sum": {"type": "string", "description": "hex, 64 digits"}})
    protocol_header = {"name": "X-Motcua-Protocol", "in": "header", "required": True,
                       "schema": {"type": "integer", "enum": list(protocol.ACCEPTED_VERSIONS)}}
    sha_param = {"name": "sha256", "in": "path", "required": True,
                 "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "motcua hub", "version": __version__,
                 "description": "Enrollment, push/pull sync and attachments of the district hub. Sync bodies are "
                                f"zstd-compressed JSON ({ZSTD}); errors are plain JSON. Signed requests carry "
                                "X-Motcua-Node, X-Motcua-Time (ms on the hub's clock) and X-Motcua-Signature = "
                                "Ed25519 over 'motcua-request\\nMETHOD\\nPATH[?QUERY]\\nTIME\\nNODE\\nsha256(body)'; "
                                f"the time must be within {protocol.REQUEST_WINDOW_MS // 60000} minutes of the hub's."},
        "components": {
            "securitySchemes": {"nodeSignature": {"type": "apiKey", "in": "header", "name": "X-Motcua-Signature"}},
            "schemas": {
                "Error": _obj({"error": _obj({"code": {"type": "string"}, "message": {"type": "string"},
                                              "change": _obj({"node_id": {"type": "string"}, "seq": {"type": "integer"},
                                                              "hash": {"type": "string"}})}, ["code", "message"])}),
                "Change": _obj({k: {"type": t} for k, t in (
                    ("node_id", "string"), ("seq", "integer"), ("hlc", "string"), ("entity", "string"),
                    ("entity_id", "string"), ("op", "string"), ("payload", "object"), ("author", "string"),
                    ("prev", "string"), ("hash", "string"), ("sig", "string"))}),
                "NodeRecord": _obj({k: {"type": "string"} for k in (
                    "node_id", "public_key", "kind", "unit_code", "unit_name", "scope", "status", "enrolled_at",
                    "revoked_at", "hub_node_id")}),
            },
        },
        "paths": {
            "/api/v1/time": {"get": {
                "summary": "The hub's clock and identity",
                "responses": {"200": {"description": "Clock", "content": {"application/json": {"schema": _obj({
                    "hub_time_ms": {"type": "integer"}, "hub_node_id": {"type": "string"},
                    "hub_public_key": {"type": "string"}, "protocol": {"type": "integer"}},
                    ["hub_time_ms", "hub_node_id", "hub_public_key", "protocol"])}}}}}},
            "/api/v1/enroll": {"post": {
                "summary": "Register a node's public key with a one-time token",
                "requestBody": {"required": True, "content": {"application/json": {"schema": _obj({
                    "token": {"type": "string"}, "node_id": {"type": "string"}, "public_key": {"type": "string"},
                    "unit_code": {"type": "string"}, "unit_name": {"type": "string"},
                    "software_version": {"type": "string"}}, ["token", "node_id", "public_key", "unit_code"])}}},
                "responses": {
                    "200": {"description": "The node's record signed by the hub (record_sig = Ed25519 over the "
                                           "canonical JSON of record)",
                            "content": {"application/json": {"schema": _obj({
                                "record": {"$ref": "#/components/schemas/NodeRecord"}, "record_sig": {"type": "string"},
                                "hub_node_id": {"type": "string"}, "hub_public_key": {"type": "string"}})}}},
                    "400": _error("Missing or invalid field"),
                    "403": _error("token_unknown, token_used, token_expired, token_scope"),
                    "409": _error("already_enrolled")}}},
            "/api/v1/sync/push": {"post": {
                "summary": "Push a batch of changes (stored and merged all or nothing)",
                "description": "The node's own changes, and, for a commune node relaying its field laptops, "
                               "other nodes' changes with their original signatures. A relayed origin must be "
                               "enrolled and active, with a scope that includes the pushing node's unit; its run "
                               "continues what the hub holds of it (changes already held are skipped) and may "
                               "only write units both nodes serve. Unknown, revoked or quarantined origins are "
                               "refused with 403 (unknown_node, node_revoked, node_quarantined).",
                "security": SIGNED, "parameters": [protocol_header],
                "requestBody": {"required": True, "content": {ZSTD: {"schema": _obj(
                    {"node_id": {"type": "string"}, "changes": {"type": "array", "items": change}})}}},
                "responses": {
                    "200": _packed(_obj({"acked_seq": {"type": "integer"}, "hub_time_ms": {"type": "integer"},
                                         "stored": {"type": "integer"}, "skipped": {"type": "integer"},
                                         "origins": {"type": "object", "additionalProperties": {"type": "integer"},
                                                     "description": "Highest seq held of each relayed origin"}}),
                                   "Highest seq of this node (and of each relayed origin) the hub holds"),
                    **COMMON_ERRORS,
                    "409": _error("sequence_gap, chain_broken, change_not_applicable, fork (the node is quarantined)"),
                    "503": _error("Too many pushes in flight: retry after the Retry-After header's seconds")}}},
            "/api/v1/sync/pull": {"post": {
                "summary": "Changes in the node's scope after its cursor",
                "security": SIGNED, "parameters": [protocol_header],
                "requestBody": {"required": True, "content": {ZSTD: {"schema": _obj(
                    {"node_id": {"type": "string"}, "cursor": {"type": ["string", "null"]},
                     "limit": {"type": "integer", "maximum": protocol.PULL_LIMIT}}, ["node_id"])}}},
                "responses": {"200": _packed(_obj({
                    "changes": {"type": "array", "items": change}, "cursor": {"type": "string"},
                    "more": {"type": "boolean"}, "digest": {"oneOf": [digest, {"type": "null"}]}},
                    ["changes", "cursor", "more", "digest"]), "A page; the last page (more=false) carries the "
                                                              "digest of the node's scope"), **COMMON_ERRORS}}},
            "/api/v1/sync/status": {"post": {
                "summary": "What the hub holds of the node, and the digest of its scope",
                "security": SIGNED, "parameters": [protocol_header],
                "requestBody": {"required": True, "content": {ZSTD: {"schema": _obj(
                    {"node_id": {"type": "string"}, "backlog": {"type": "integer"},
                     "clock_skew_ms": {"type": "integer"},
                     "origins": {"type": "array", "items": {"type": "string"}, "maxItems": protocol.MAX_STATUS_ORIGINS,
                                 "description": "Node ids whose highest held seq the node wants to know"}},
                    ["node_id"])}}},
                "responses": {"200": _packed(_obj({
                    "acked_seq": {"type": "integer"}, "last_hash": {"type": "string"}, "digest": digest,
                    "hub_time_ms": {"type": "integer"},
                    "origins": {"type": "object", "additionalProperties": {"type": "integer"},
                                "description": "Highest seq held of each listed node that is enrolled"}}),
                    "Status"), **COMMON_ERRORS}}},
            "/api/v1/files/{sha256}": {
                "parameters": [sha_param],
                "head": {"summary": "Bytes of the file the hub holds (X-Motcua-Size), to resume an upload",
                         "security": SIGNED,
                         "responses": {"200": {"description": "Size", "headers": {
                             "X-Motcua-Size": {"schema": {"type": "integer"}},
                             "X-Motcua-Complete": {"schema": {"type": "integer", "enum": [0, 1]}}}}}},
                "put": {"summary": "Upload a chunk at ?offset=N; complete when the bytes hash to sha256",
                        "security": SIGNED,
                        "parameters": [{"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}}],
                        "requestBody": {"content": {"application/octet-stream": {"schema": {"type": "string",
                                                                                            "format": "binary"}}}},
                        "responses": {"200": {"description": "Bytes held", "content": {"application/json": {
                            "schema": _obj({"size": {"type": "integer"}, "complete": {"type": "boolean"}})}}},
                            "409": _error("offset_mismatch (resume from X-Motcua-Size), unknown_file"),
                            "422": _error("file_hash_mismatch, file_too_long: the partial upload was discarded"),
                            **COMMON_ERRORS}},
                "get": {"summary": "Download a file an attachment in the node's scope names", "security": SIGNED,
                        "responses": {"200": {"description": "The file", "content": {
                            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
                            "404": _error("No such file in the node's scope")}}},
            "/api/v1/openapi.json": {"get": {"summary": "This document",
                                             "responses": {"200": {"description": "OpenAPI 3.1"}}}},
        },
    }

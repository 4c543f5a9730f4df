"""Errors of the sync core.

    SyncError
    ├── EncodingError          a value the canonical encoding refuses
    ├── SignatureInvalid       Ed25519 signature does not verify
    ├── HashMismatch           recomputed hash differs from the stored one
    ├── ChainBroken            `prev` does not name the previous change's hash
    ├── SequenceGap            seq is not the next one for its node
    └── ChangeNotApplicable    the change cannot be applied to the current state

Each carries an HTTP status for the edges that need one.
"""


class SyncError(Exception):
    http_status = 400
    code = "sync_error"

    def __init__(self, message: str, *, change_ref: str | None = None):
        super().__init__(message)
        self.message = message
        self.change_ref = change_ref


class EncodingError(SyncError):
    code = "encoding_error"


class SignatureInvalid(SyncError):
    http_status = 403
    code = "signature_invalid"


class HashMismatch(SyncError):
    code = "hash_mismatch"


class ChainBroken(SyncError):
    http_status = 409
    code = "chain_broken"


class SequenceGap(SyncError):
    http_status = 409
    code = "sequence_gap"


class ChangeNotApplicable(SyncError):
    http_status = 409
    code = "change_not_applicable"

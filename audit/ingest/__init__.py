"""Decision-log ingest: the contract every event is held to (contract.py), the upload that
checks and stages a batch before answering 204 (upload.py), and the worker's storing of
it as decisions (rows.py), each with the policy version that made it (versions.py)."""
from .contract import BatchRejected
from .rows import decision_from_event, store_batch
from .upload import parse_events, read_upload, stage_batch
from .versions import VersionResolver

__all__ = ["BatchRejected", "VersionResolver", "decision_from_event", "parse_events", "read_upload",
           "stage_batch", "store_batch"]

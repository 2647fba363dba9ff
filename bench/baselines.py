"""What the benchmarks measure Gavel against, kept in one place so the benchmarks agree."""


def export_copy(where: str) -> str:
    """Postgres writing the columns a decision export has, as CSV, itself: the floor for an export.
    `where` is the SQL condition on `d` (audit_decision); it may hold %s parameters."""
    return f"""
COPY (SELECT d.decision_id, d.timestamp, d.path, d.outcome, p.name, v.number, d.version_source,
             d.effective_mode, d.environment, d.instance, d.user, d.agent, d.action, d.resource, d.approval_ref,
             d.latency_ns, d.requested_by, d.received_at, d.reasons, d.exception_ids, d.masked, d.input, d.result
      FROM audit_decision d LEFT JOIN policies_policy p ON p.id = d.policy_id
           LEFT JOIN policies_policyversion v ON v.id = d.version_id
      WHERE {where} ORDER BY d.timestamp, d.id)
TO STDOUT WITH (FORMAT csv, HEADER)
"""

"""Schemathesis fuzzes the API from its own OpenAPI schema (/api/v1/schema/) on the live test
server, as an auditor and as a policy author: no operation may answer 5xx. Bounded: a few
examples per operation, no shrinking, and a time budget for the whole run."""
import time

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error

# Imported here, at collection, not lazily inside the test: pytest rewrites it on import, and
# CPython 3.11 can fail to parse with "AST constructor recursion depth mismatch" deep in a stack.
from schemathesis.specs.openapi import schemas as _openapi_schemas  # noqa: F401

from tests.factories import DecisionFactory, PolicyFactory

BUDGET_SECONDS = 150  # generous: a loaded, shared machine is slow, and slowness is not what this tests
EXAMPLES = 4


@pytest.mark.django_db(transaction=True)
def test_no_api_operation_answers_5xx(live_server, make_user):
    PolicyFactory(name="budget")
    DecisionFactory()
    tokens = {role: Token.objects.create(user=make_user(role)).key for role in ("auditor", "policy_author")}
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/v1/schema/",
                                           headers={"Authorization": f"Token {tokens['auditor']}"}, timeout=30)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 20  # the whole API, not an empty schema
    deadline = time.monotonic() + BUDGET_SECONDS
    server_errors, skipped, statuses = [], [], []

    for role, token in tokens.items():
        headers = {"Authorization": f"Token {token}"}
        for operation in operations:
            if time.monotonic() > deadline:
                skipped.append(f"{role} {operation.label}")
                continue

            @hypothesis.settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                                 phases=[Phase.explicit, Phase.generate],
                                 suppress_health_check=list(HealthCheck))
            @hypothesis.given(case=operation.as_strategy())
            def fuzz(case):
                # Long polling (?wait=) is bounded by the server; keep generated waits short here.
                if case.query and "wait" in case.query:
                    case.query["wait"] = 0
                response = case.call_and_validate(base_url=live_server.url, headers=headers,
                                                  checks=[not_a_server_error], timeout=30)
                statuses.append(response.status_code)

            try:
                fuzz()
            except Exception as exc:  # a failed check: record it and go on with the other operations
                # Hypothesis wraps a failure it could not reproduce in a group: name what each run raised.
                causes = getattr(exc, "exceptions", None) or [exc]
                server_errors.append(f"{role} {operation.label}: {str(exc)[:300]} "
                                     + " | ".join(f"{type(c).__name__}: {str(c)[:600]}" for c in causes))

    assert not server_errors, "\n\n".join(server_errors)
    # It really ran: every operation for both roles, with answers both allowed and refused.
    assert len(statuses) >= 2 * len(operations) and any(s < 300 for s in statuses) and 403 in statuses
    assert not skipped, f"time budget of {BUDGET_SECONDS}s ran out before: {skipped}"

"""How Gavel reads an outcome out of the result shapes OPA policies return."""
import pytest

from core.models import Outcome
from core.outcomes import derive_outcome


@pytest.mark.parametrize(
    "result, outcome, reasons",
    [
        (True, Outcome.ALLOW, []),
        (False, Outcome.DENY, []),
        ({"allow": True, "reasons": []}, Outcome.ALLOW, []),
        ({"allow": False, "reasons": ["token budget exceeded"]}, Outcome.DENY, ["token budget exceeded"]),
        ({"allow": False, "reason": "blocked user"}, Outcome.DENY, ["blocked user"]),
        ({"allow": False, "require_approval": True, "reasons": ["delete in prod"]},
         Outcome.REQUIRE_APPROVAL, ["delete in prod"]),
        # Gavel's entrypoint in dry-run: allowed, but enforcement would have held it for a person.
        ({"allow": True, "require_approval": False, "would_deny": False, "would_require_approval": True,
          "effective_mode": "dry-run", "reasons": ["delete in prod"]},
         Outcome.WOULD_REQUIRE_APPROVAL, ["delete in prod"]),
        (["bucket must be encrypted", "queue needs an SLA"], Outcome.DENY,
         ["bucket must be encrypted", "queue needs an SLA"]),
        ([], Outcome.ALLOW, []),
        ({"deny": ["no routing method"]}, Outcome.DENY, ["no routing method"]),
        ({"deny": []}, Outcome.ALLOW, []),
        ([{"msg": "user is suspended", "severity": "high"}], Outcome.DENY, ["user is suspended"]),
        ({"allowed_tools": ["search"]}, Outcome.UNDEFINED, []),
        ("some string", Outcome.UNDEFINED, []),
        (None, Outcome.UNDEFINED, []),
    ],
)
def test_outcome_of_each_result_shape(result, outcome, reasons):
    assert derive_outcome(result) == (outcome, reasons)


def test_a_missing_result_is_undefined():
    # OPA omits `result` when the queried rule is undefined for the input.
    assert derive_outcome() == (Outcome.UNDEFINED, [])

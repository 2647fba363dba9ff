"""Postgres writes every exported line now (exports/formats.py). On generated decisions full of what
breaks formats (formula starts, tab and CR prefixes, quotes, commas, line breaks, U+2028, any
Unicode, nested JSON, nulls, whole and fractional seconds), the file a real export produces must be
byte for byte what the Python reference of the documented format writes (reference_format.py)."""
import io
import zipfile
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from core.models import Decision, Outcome, StoredDecisionId, VersionSource
from exports import services as exports
from exports.formats import select_rows
from exports.models import ExportRecord
from policies.models import PolicyVersion
from tests.exports.reference_format import REFERENCE
from tests.factories import DecisionFactory, PolicyFactory

BASE = datetime(2026, 3, 2, tzinfo=dt_timezone.utc)  # a Monday: a week of partitions holds every example
TRICKY = ["", "=1+1", "+1", "-1", "@SUM(A1)", "\tsheet", "\rcr", "'quoted", 'say "no"', "a,b", "a\nb", "a\r\nb",
          "\u2028", "x\u2029y", "\u202eRTL", "caf\u00e9 \U0001F680", "null", "[1, 2]", " lead", "\\back\\slash",
          "\x01\x1f\x7f", "-", "=", "\u00a0", '"', "\n"]
text = st.one_of(
    st.sampled_from(TRICKY),
    st.tuples(st.sampled_from(["", "=", "+", "-", "@", "\t", "\r", '"', ","]),
              st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12))
    .map("".join),
)


def short(size):
    return text.map(lambda value: value[:size])


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63), text,
              st.floats(allow_nan=False, allow_infinity=False)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(text, inner, max_size=3)),
    max_leaves=8,
)
decisions = st.lists(st.fixed_dictionaries({
    "decision_id": short(100).filter(bool),
    "at": st.one_of(st.integers(0, 6 * 86400).map(lambda s: timedelta(seconds=s)),
                    st.integers(0, 6 * 86400 * 10**6).map(lambda us: timedelta(microseconds=us))),
    "path": short(500), "outcome": st.sampled_from(Outcome.values), "versioned": st.booleans(),
    "version_source": st.one_of(st.sampled_from(VersionSource.values), short(20)),
    "effective_mode": short(10), "environment": short(100), "instance": short(200), "user": short(300),
    "agent": short(300), "action": short(300), "resource": short(300), "approval_ref": short(100),
    "requested_by": short(200), "latency_ns": st.one_of(st.none(), st.integers(0, 2**63 - 1)),
    "reasons": st.lists(text, max_size=3), "exception_ids": st.lists(st.integers(1, 2**63 - 1), max_size=2),
    "masked": st.lists(short(300), max_size=2), "input": json_values, "result": json_values,
}), min_size=1, max_size=4)


def exported(auditor, fmt: str) -> tuple[bytes, ExportRecord]:
    """The data file of a real streamed export, taken out of the archive the browser receives."""
    record = exports.start_export(auditor, "", fmt)
    body = b"".join(exports.stream_export(record))
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        record = ExportRecord.objects.get(pk=record.pk)
        assert record.status == ExportRecord.Status.DONE
        return archive.read(record.download_name), record


@pytest.mark.django_db
def test_postgres_writes_exactly_the_documented_format(make_user, settings, tmp_path):
    settings.GAVEL_EXPORT_DIR = tmp_path
    auditor = make_user("auditor")
    policy = PolicyFactory(name="property_policy")
    version = PolicyVersion.objects.filter(policy=policy).first()

    @hypothesis_settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(decisions)
    def check(generated):
        Decision.objects.all().delete()
        StoredDecisionId.objects.all().delete()  # else an id an earlier example stored is skipped as sent twice
        for number, fields in enumerate(generated):
            fields = dict(fields)
            at, versioned = fields.pop("at"), fields.pop("versioned")
            fields["decision_id"] = f"{number}{fields['decision_id']}"[:100]  # stored once per id
            DecisionFactory(**fields,
                            timestamp=BASE + at, policy=policy if versioned else None,
                            version=version if versioned else None)
        rows = list(select_rows(Decision.objects.order_by("timestamp", "id")))
        assert len(rows) == len(generated)
        for fmt, reference in REFERENCE.items():
            body, record = exported(auditor, fmt)
            assert body == reference(rows), fmt
            # the manifest's time range is read back from the first and last records
            assert (record.first_timestamp, record.last_timestamp) == (rows[0][1], rows[-1][1]), fmt

    check()

"""Evidence an auditor files: a version's print view with its approval chain (who asked, who
approved, when, where it runs), the Rego as a numbered appendix, people's full names and page
numbers; the change between two versions likewise; both as PDF from the same HTML (WeasyPrint)."""
import subprocess

import pytest

from fleet.models import Environment
from policies import review, services
from policies.evidence import views as evidence
from policies.models import Publication
from tests.factories import PolicyFactory

pytestmark = pytest.mark.django_db

SOURCE = """package gavel.{name}

allowed_tools := {{"search", "read"}}

default allow := false

# METADATA
# title: Unknown tools are refused
deny contains sprintf("tool %s is not allowed", [input.tool]) if {{
	not input.tool in allowed_tools
}}

allow if count(deny) == 0
"""


@pytest.fixture
def published(opa, make_user):
    """Version 1 asked for by Ann, approved by Sam and confirmed by the real OPA; version 2 saved."""
    ann = make_user("policy_author", username="ann", first_name="Ann", last_name="Author")
    sam = make_user("security_admin", username="sam", first_name="Sam", last_name="Admin")
    policy = PolicyFactory(name="gateway", author=ann, source=SOURCE.format(name="gateway"))
    asked = review.request_publish(policy.latest_version, requested_by=ann, reason="ready for the agents")
    approved = review.approve(asked, approved_by=sam, note="tests pass, reviewed the deny rule")
    services.attempt_publication(Publication.objects.get(pk=approved.publication_id))
    services.save_version(policy, source=SOURCE.format(name="gateway").replace('"read"}', '"read", "write"}'),
                          author=ann, message="agents may write")
    return policy


@pytest.fixture
def officer(client, make_user):
    client.force_login(make_user("compliance_officer", username="carla", first_name="Carla", last_name="Compliance"))
    return client


def test_the_version_evidence_names_the_approval_chain_and_appends_the_numbered_rego(published, officer):
    body = officer.get("/policies/gateway/v1/evidence/").content.decode()
    chain = body[body.index('data-testid="approval-chain"'):body.index('data-testid="runs-in"')]
    assert "Ann Author (ann)" in chain and "“ready for the agents”" in chain
    assert "Approved by Sam Admin (sam)" in chain and "“tests pass, reviewed the deny rule”" in chain
    assert "not confirmed" not in chain  # OPA confirmed it
    assert "Runs in:</strong> dev since" in body or "Runs in:</strong> " in body and " since " in body
    assert 'data-testid="written-by">Ann Author (ann), saved' in body
    assert body.count('<li id="source-L') == len(SOURCE.rstrip("\n").split("\n"))
    assert "Appendix A: the Rego source of version 1" in body
    assert 'data-testid="prepared-for">Prepared by Gavel on' in body and "for Carla Compliance (carla)." in body


def test_the_evidence_of_a_policy_published_nowhere_says_nothing_enforces_it(make_user, officer):
    PolicyFactory(name="draft_only", author=make_user("policy_author"), source=SOURCE.format(name="draft_only"))
    Environment.objects.default()  # the environment exists; the policy never ran in it
    body = officer.get("/policies/draft_only/v1/evidence/").content.decode()
    assert "Not published in any environment yet, so nothing enforces it." in body
    assert "enforced for everyone" not in body and "no environment runs this version now" in body


def test_the_pdf_is_paged_and_carries_the_same_evidence(published, officer, tmp_path):
    response = officer.get("/policies/gateway/v1/evidence.pdf")
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == 'attachment; filename="gateway-v1-evidence.pdf"'
    assert response.content.startswith(b"%PDF")
    path = tmp_path / "evidence.pdf"
    path.write_bytes(response.content)
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout
    pages = text.split("\f")
    assert len([p for p in pages if p.strip()]) >= 2  # the appendix starts a page of its own
    last = [p for p in pages if p.strip()][-1]
    total = len([p for p in pages if p.strip()])
    assert f"Page {total} of {total}" in last and "Page 1 of" in pages[0]
    words = " ".join(text.split())  # a table cell's lines interleave with its neighbours' in the layout
    assert "Sam Admin" in words and "Ann Author" in words and "Appendix A" in words
    assert "9 deny contains sprintf" in words  # the appendix keeps its line numbers


def test_the_change_between_two_versions_prints_as_evidence(published, officer):
    body = officer.get("/policies/gateway/v2/evidence/from-v1/").content.decode()
    assert "What changed in Gateway: version 1 to version 2" in body
    assert 'data-testid="diff-in-words"' in body and 'data-testid="line-diff"' in body
    assert '"read", "write"}' in body.replace("&quot;", '"')
    assert "Approved by Sam Admin (sam)" in body  # version 1's chain
    assert "Nobody has asked to publish this version." in body  # version 2's
    pdf = officer.get("/policies/gateway/v2/evidence/from-v1.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert 'data-testid="diff-evidence"' in officer.get("/policies/gateway/v2/diff/?against=1").content.decode()


def test_the_pdf_fetches_nothing_but_gavels_static_files():
    with pytest.raises(ValueError, match="static files only"):
        evidence._static_only("http://169.254.169.254/latest/meta-data/")
    body, mime = evidence._static_only("http://gavel.invalid/static/gavel/evidence.css")
    assert body.startswith(b"/*") and mime == "text/css"

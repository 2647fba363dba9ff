"""A security admin decommissions a replaced OPA server on the environments page in a real
browser: the form opens, asks for the name, and the instance moves to the decommissioned list."""
import re

import pytest
from playwright.sync_api import expect

from fleet import credentials as opa_credentials
from fleet.models import OpaInstance
from tests.factories import EnvironmentFactory, OpaInstanceFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_admin_decommissions_an_instance_on_the_environments_page(live_server, page):
    staging = EnvironmentFactory(name="staging")
    OpaInstanceFactory(environment=staging, name="opa-a", url="http://10.0.0.5:8181")
    opa_credentials.issue_token(OpaInstanceFactory(environment=staging, name="opa-b", url="http://10.0.0.6:8181"))
    admin = UserFactory(role="security_admin", username="erin")
    console_errors = []
    page.on("console", lambda message: message.type == "error" and console_errors.append(message.text))

    page.goto(f"{live_server.url}/environments/")
    page.fill("#id_username", admin.username)
    page.fill("#id_password", "correct horse battery staple")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/environments/$"))

    form = page.get_by_test_id("decommission-opa-b")
    form.locator("summary").click()
    form.get_by_label("Type opa-b to confirm").fill("opa-b")
    form.get_by_role("button", name="Decommission opa-b").click()

    expect(page.locator("body")).to_contain_text("staging/opa-b decommissioned")
    row = page.get_by_test_id("decommissioned-instance-opa-b")
    expect(row).to_contain_text("erin")
    expect(page.get_by_test_id("instance-opa-b")).to_have_count(0)
    expect(page.get_by_test_id("instance-opa-a")).to_be_visible()
    assert OpaInstance.objects.get(name="opa-b").decommissioned_at is not None
    assert not console_errors, console_errors  # no CSP violation from the new markup

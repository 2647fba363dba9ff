"""Demo users (one per role) and the two demo policies. Safe to run on every start."""
import secrets
from datetime import timedelta
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token

from console.demo.traffic import EXCEPTION_USER_ID
from console.management.commands.demo_traffic import DEMO_PEP_USERNAME
from console.roles import CI_PIPELINE, ENFORCEMENT_POINT, ROLES
from fleet.models import Environment
from policies import review, services
from policies.models import Policy
from rollout import canary
from rollout import exceptions as policy_exceptions
from rollout import services as rollout_services
from rollout.models import Mode

POLICY_DIR = Path(__file__).resolve().parents[2] / "demo" / "policies"


# role group -> demo username. "secadmin", not "admin", so it never collides with a superuser.
USERNAMES = {
    "compliance_officer": "compliance",
    "security_admin": "secadmin",
    "reviewer": "reviewer",
    "auditor": "auditor",
    "policy_author": "author",
}

# Their names, as print views and evidence show people.
FULL_NAMES = {
    "compliance": ("Carmen", "Ortiz"),
    "secadmin": ("Sam", "Adeyemi"),
    "reviewer": ("Riya", "Patel"),
    "auditor": ("Alex", "Morgan"),
    "author": ("Ana", "Souza"),
}

# The CI pipeline's account (`gavel check`, `conftest pull`): no password; a security admin gives it a token.
DEMO_CI_USERNAME = "demo-ci"

DEMO_POLICIES = (
    ("agent_gateway", "AI agent gateway",
     "Decides whether an AI agent may call a tool for a user: suspended users, per-agent tool allowlists, "
     "token budgets, dangerous arguments, and human approval for deletes in production."),
    ("platform_changes", "Platform change guardrails",
     "Checks programmatic configuration changes before they reach the contact-centre platform: queue SLAs "
     "and routing, corporate emails and ticketed admin grants, encrypted storage buckets."),
)

# Each demo policy's history, oldest first: the folder under POLICY_DIR holding that version's
# `<name>.rego` and `<name>_test.rego`, and its message. The newest is the one published.
HISTORY = {
    "agent_gateway": (
        ("v1", "Initial version"),
        ("", "Deletes someone else already approved go ahead; token budget lowered to 8,000; "
             "SQL comment injection refused"),
    ),
    "platform_changes": (
        ("v1", "Initial version"),
        ("", "Admin roles need a change ticket; every delete waits for a reviewer; ops.example.com is corporate"),
    ),
}


def demo_files(name: str, folder: str) -> tuple[str, str]:
    """The Rego and the Rego tests of one version of a demo policy."""
    base = POLICY_DIR / folder if folder else POLICY_DIR
    tests = base / f"{name}_test.rego"
    return (base / f"{name}.rego").read_text(encoding="utf-8"), \
        tests.read_text(encoding="utf-8") if tests.exists() else ""


class Command(BaseCommand):
    help = "Create one demo user per role and the demo policies; --publish also queues them for OPA."

    def add_arguments(self, parser):
        parser.add_argument("--publish", action="store_true", help="Publish the demo policies to OPA unless it already runs them.")

    def handle(self, *args, publish=False, **options):
        # One transaction: publications are pushed by on_commit hooks, i.e. only once all of this is saved.
        with transaction.atomic():
            users, created = self._users()
            policies, new = self._policies(users["policy_author"])
            if publish:
                for policy in policies:
                    if policy in new:  # published the way people publish: asked for, then approved
                        publication = self._publish_reviewed(policy, users)
                    else:  # OPA starts empty each time `make run` starts it: publish what it lacks.
                        publication = services.publish_if_missing(policy, requested_by=users["security_admin"])
                    if publication:
                        self.stdout.write(f"Queued {publication.version} for publication to OPA.")
            self._rollout(policies[0], users)
        self._print_passwords(created, users)

    def _users(self):
        User = get_user_model()
        users, created = {}, []
        for role in ROLES:
            if role in (ENFORCEMENT_POINT, CI_PIPELINE):
                continue  # a service account with a token, not a person with a password
            username = USERNAMES.get(role.group, role.group)
            user = User.objects.filter(username=username).first()
            if user is None:
                password = secrets.token_urlsafe(9)
                first_name, last_name = FULL_NAMES.get(username, ("", ""))
                user = User.objects.create_user(username=username, password=password, first_name=first_name,
                                                last_name=last_name)
                created.append((username, role.label, password))
            user.groups.add(Group.objects.get_or_create(name=role.group)[0])
            users[role.group] = user
        pep, _ = User.objects.get_or_create(username=DEMO_PEP_USERNAME)
        pep.set_unusable_password()
        pep.save()
        pep.groups.add(Group.objects.get(name=ENFORCEMENT_POINT.group))
        Token.objects.get_or_create(user=pep)
        ci, _ = User.objects.get_or_create(username=DEMO_CI_USERNAME)
        ci.set_unusable_password()
        ci.save()
        ci.groups.add(Group.objects.get(name=CI_PIPELINE.group))
        return users, created

    def _policies(self, author):
        """Each demo policy with its history of versions (HISTORY); one that exists is left as it is.
        Returns them all, and those made now."""
        policies, new = [], []
        for name, title, description in DEMO_POLICIES:
            policy = Policy.objects.filter(name=name).first()
            if policy is None:
                (first, message), *later = HISTORY[name]
                source, tests = demo_files(name, first)
                policy = services.create_policy(name=name, title=title, description=description, author=author,
                                                message=message, source=source, tests=tests)
                for folder, message in later:
                    source, tests = demo_files(name, folder)
                    services.save_version(policy, source=source, tests=tests, author=author, message=message)
                self.stdout.write(f"Created policy {name} ({policy.package}) with {len(HISTORY[name])} versions.")
                new.append(policy)
            policies.append(policy)
        return policies, new

    def _publish_reviewed(self, policy, users):
        """The author asks for the newest version to be published, the security admin approves: the
        version's evidence then shows a real approval chain."""
        asked = review.request_publish(policy.latest_version, requested_by=users["policy_author"],
                                       reason="Demo: its tests pass and the change from version 1 is reviewed")
        approved = review.approve(asked, approved_by=users["security_admin"],
                                  note="Read the change in words and the test results")
        return approved.publication

    def _rollout(self, gateway, users):
        """The agent gateway half-way through a canary, with one granted exception and one the author asked
        for, which the security admin can approve or reject (nobody decides on their own request)."""
        environment = Environment.objects.default()
        if gateway.canary_settings.exists():
            return
        rollout_services.change_rollout(
            gateway, environment, canary.Rollout(mode=Mode.DRY_RUN, enforce_percentage=75),
            changed_by=users["security_admin"], reason="Demo: enforcing three users in four while we watch",
        )
        granted = policy_exceptions.request_exception(
            policy=gateway, environment=environment, match=[{"field": "user.id", "value": EXCEPTION_USER_ID}],
            reason_contains="token budget", justification="Quarter-end reconciliation needs long reports.",
            ticket="SEC-2041", expires_at=timezone.now() + timedelta(days=5), requested_by=users["policy_author"],
        )
        policy_exceptions.approve_exception(granted, comment="Checked the ticket", approved_by=users["security_admin"])
        policy_exceptions.request_exception(
            policy=gateway, environment=environment, match=[{"field": "user.id", "value": "u-119"}],
            reason_contains="forbidden pattern", justification="Security training lab uses sample passwords.",
            ticket="SEC-2057", expires_at=timezone.now() + timedelta(days=2), requested_by=users["policy_author"],
        )
        self.stdout.write("Set the agent gateway's rollout to 75% enforced and added two exceptions.")

    def _print_passwords(self, created, users):
        if not created:
            self.stdout.write("Demo users already exist; their passwords were shown on first start.")
            return
        self.stdout.write(self.style.SUCCESS("Demo users (passwords are shown only this once):"))
        self.stdout.write(f"  {'username':<12} {'role':<20} password")
        for username, label, password in created:
            self.stdout.write(f"  {username:<12} {label:<20} {password}")
        existing = sorted({u.username for u in users.values()} - {c[0] for c in created})
        if existing:
            self.stdout.write(f"  Already present (password unchanged): {', '.join(existing)}")

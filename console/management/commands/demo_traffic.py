"""Send a steady stream of realistic requests through the enforcement-point client, so the
audit trail fills up and actions that need approval land in the reviewers' queue."""
import logging
import random
import time
from collections import Counter

import httpx
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from rest_framework.authtoken.models import Token

from approvals.pep_client import EnforcementPoint
from console.demo.traffic import random_request

REPORT_EVERY = 50
RETRY_PAUSE = 2.0  # OPA may still be starting, or the demo policies not yet published
DEMO_PEP_USERNAME = "demo-enforcement-point"  # made by seed_demo

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Ask OPA for decisions on generated agent-gateway and platform-change inputs."

    def add_arguments(self, parser):
        parser.add_argument("--rate", type=float, default=3.0, help="Requests per second (default 3).")
        parser.add_argument("--count", type=int, default=None, help="Stop after this many requests.")
        parser.add_argument("--seed", type=int, default=None, help="Seed for a repeatable stream.")
        parser.add_argument("--gavel-url", default="http://127.0.0.1:8000",
                            help="Where held actions are sent for approval.")

    def handle(self, *args, rate, count, seed, gavel_url, **options):
        if rate <= 0:
            raise CommandError("--rate must be greater than 0")
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request drowns the summary
        token = Token.objects.filter(user__username=DEMO_PEP_USERNAME).values_list("key", flat=True).first()
        if token is None:
            raise CommandError("run `manage.py seed_demo` first: it makes the demo enforcement point's token")
        # Fail closed, as a careful gateway would; the demo does not wait for reviewers.
        pep = EnforcementPoint(settings.OPA_URL, gavel_url, token, fail_open=False)
        rng = random.Random(seed)
        counts = Counter()
        sent = 0
        try:
            while count is None or sent < count:
                started = time.monotonic()
                path, document = random_request(rng)
                sent += 1
                try:
                    verdict = pep.decide(path, document, wait_for_approval=False)
                except httpx.HTTPError as exc:  # Gavel refused or is down: holding failed
                    counts["hold failed"] += 1
                    log.warning("could not hold an action for approval (%s)", exc)
                    continue
                counts[verdict.status] += 1
                if verdict.status == "unreachable":
                    time.sleep(RETRY_PAUSE)
                if sent % REPORT_EVERY == 0:
                    self._report(sent, counts)
                time.sleep(max(0.0, 1 / rate - (time.monotonic() - started)))
        except KeyboardInterrupt:
            self.stdout.write("")  # leave the ^C on its own line
        self._report(sent, counts, final=True)

    def _report(self, sent, counts, final=False):
        summary = ", ".join(f"{name} {n}" for name, n in sorted(counts.items()))
        self.stdout.write(f"{'done: ' if final else ''}{sent} requests: {summary or 'none answered'}")

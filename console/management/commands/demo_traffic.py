"""Send a steady stream of realistic decision requests to OPA, so the audit trail fills up."""
import logging
import random
import time
from collections import Counter

from django.core.management.base import BaseCommand, CommandError

from audit.outcomes import derive_outcome
from console.demo.traffic import random_request
from policies.opa import OpaRejected, OpaUnreachable, opa_client

REPORT_EVERY = 50
RETRY_PAUSE = 2.0  # OPA may still be starting, or the demo policies not yet published

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Ask OPA for decisions on generated agent-gateway and platform-change inputs."

    def add_arguments(self, parser):
        parser.add_argument("--rate", type=float, default=3.0, help="Requests per second (default 3).")
        parser.add_argument("--count", type=int, default=None, help="Stop after this many requests.")
        parser.add_argument("--seed", type=int, default=None, help="Seed for a repeatable stream.")

    def handle(self, *args, rate, count, seed, **options):
        if rate <= 0:
            raise CommandError("--rate must be greater than 0")
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request drowns the summary
        rng = random.Random(seed)
        counts = Counter()
        sent = 0
        try:
            with opa_client() as opa:
                while count is None or sent < count:
                    started = time.monotonic()
                    path, document = random_request(rng)
                    sent += 1
                    try:
                        response = opa.decide(path, document)
                    except (OpaUnreachable, OpaRejected) as exc:
                        counts["error"] += 1
                        log.warning("OPA did not decide (%s); going on in %.0fs", exc, RETRY_PAUSE)
                        time.sleep(RETRY_PAUSE)
                        continue
                    outcome, _ = derive_outcome(response.get("result"))
                    counts[str(outcome)] += 1
                    if sent % REPORT_EVERY == 0:
                        self._report(sent, counts)
                    time.sleep(max(0.0, 1 / rate - (time.monotonic() - started)))
        except KeyboardInterrupt:
            self.stdout.write("")  # leave the ^C on its own line
        self._report(sent, counts, final=True)

    def _report(self, sent, counts, final=False):
        summary = ", ".join(f"{name} {n}" for name, n in sorted(counts.items()))
        self.stdout.write(f"{'done: ' if final else ''}{sent} requests: {summary or 'none answered'}")

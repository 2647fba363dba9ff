"""Replay recorded decisions through a saved version; the exit code can gate a CI pipeline.

    manage.py replay_version agent_gateway 7 --last 5000 --fail-on-change
"""
import json

from django.core.management.base import BaseCommand, CommandError

from fleet.models import Environment
from policies import replay
from policies.models import PolicyVersion

EXIT_CHANGED = 3  # distinct from 1 (bad arguments, OPA refused), so a pipeline can tell them apart


class Command(BaseCommand):
    help = "Replay a policy's recorded decisions through one of its versions in OPA and report what would change."

    def add_arguments(self, parser):
        parser.add_argument("policy", help="The policy's name.")
        parser.add_argument("number", type=int, help="The version number to replay.")
        parser.add_argument("--last", type=int, help="The most recent N decisions (default GAVEL_REPLAY_DEFAULT_LAST).")
        parser.add_argument("--since", help="Only decisions at or after this ISO 8601 time.")
        parser.add_argument("--until", help="Only decisions before this ISO 8601 time.")
        parser.add_argument("--environment", help="Only decisions of the version this environment runs.")
        parser.add_argument("--fail-on-change", action="store_true",
                            help=f"Exit with status {EXIT_CHANGED} when any decision would change.")
        parser.add_argument("--json", action="store_true", dest="as_json", help="Print the report as JSON.")

    def handle(self, *args, policy, number, last=None, since=None, until=None, environment=None,
               fail_on_change=False, as_json=False, **options):
        version = PolicyVersion.objects.select_related("policy").filter(policy__name=policy, number=number).first()
        if version is None:
            raise CommandError(f"no version {number} of policy {policy!r}")
        if environment is not None:
            name, environment = environment, Environment.objects.filter(name=environment).first()
            if environment is None:
                raise CommandError(f"no environment named {name!r}")
        try:
            report = replay.replay_version(version, last=last, since=since, until=until, environment=environment)
        except replay.ReplayRefused as exc:
            raise CommandError(str(exc)) from exc
        if as_json:
            self.stdout.write(json.dumps(report.as_dict(), indent=2, default=str))
        else:
            self._print(version, report)
        if fail_on_change and report.changed:
            raise CommandError(f"{report.changed} decision(s) would change", returncode=EXIT_CHANGED)

    def _print(self, version, report):
        self.stdout.write(f"{version}: {report.changed} of {report.replayed} replayed decisions would change "
                          f"({report.selected} selected, skipped {report.skipped or 'none'}; "
                          f"{report.distinct} distinct inputs in {report.round_trips} round trips, "
                          f"{report.seconds:.2f}s)")
        for group in report.groups():
            if group["count"]:
                self.stdout.write(f"  {group['label']}: {group['count']}")
                for example in group["examples"]:
                    self.stdout.write(f"    /audit/{example['decision_id']}/  {example['before']} -> {example['after']}")

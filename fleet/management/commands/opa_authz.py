"""Let Gavel manage its token to one OPA instance: write what that OPA starts with.

    manage.py opa_authz staging opa-a --out /etc/opa/gavel
    opa run --server --authentication=token --authorization=basic \\
        --config-file opa.yaml /etc/opa/gavel/gavel-authz.rego

`gavel-authz.rego` is Gavel's authorization policy; `gavel-authz-config.yaml` the bundle to add
to the OPA's configuration, which it downloads with its own token to Gavel (issue one with
`manage.py opa_environment staging --instance-token opa-a`). Neither file holds Gavel's token:
OPA only ever gets its SHA-256. From then on Gavel rotates it (the environments page or the
API) without OPA restarting. Running this again replaces the token at once.
"""
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from fleet import opa_authz
from fleet.models import OpaInstance


class Command(BaseCommand):
    help = "Issue Gavel's token to an OPA instance and write its authorization policy and configuration."

    def add_arguments(self, parser):
        parser.add_argument("environment")
        parser.add_argument("instance")
        parser.add_argument("--out", required=True, help="Directory to write the two files to")

    def handle(self, *args, **options):
        instance = OpaInstance.objects.filter(environment__name=options["environment"],
                                              name=options["instance"]).first()
        if instance is None:
            raise CommandError(f"no instance {options['instance']} in {options['environment']}: "
                               "add it with manage.py opa_environment --add-instance")
        if instance.decommissioned_at:
            raise CommandError(f"{instance} is decommissioned: add it again with manage.py opa_environment "
                               "--add-instance to put it back in service")
        out = Path(options["out"])
        out.mkdir(parents=True, exist_ok=True)
        for name, text in opa_authz.bootstrap(instance).items():
            (out / name).write_text(text)
            self.stdout.write(f"wrote {out / name}")
        self.stdout.write(f"start {instance} with: opa run --server --authentication=token --authorization=basic "
                          f"--config-file <its configuration, with {out / 'gavel-authz-config.yaml'} added> "
                          f"{out / 'gavel-authz.rego'}")

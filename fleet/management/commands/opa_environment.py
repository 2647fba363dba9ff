"""Set up an environment's delivery, OPA instances and bundle token.

    manage.py opa_environment prod --delivery pull --new-bundle-token
    manage.py opa_environment prod --delivery pull --bundle-store object_storage   # OPAs pull from the bucket
    manage.py opa_environment staging --add-instance opa-a http://10.0.0.5:8181 --token-env OPA_A_TOKEN
    manage.py opa_environment staging --instance-token opa-a      # OPA's own token to Gavel, printed once
    manage.py opa_environment staging --instance-token opa-a --token-file /etc/opa/gavel-token
    manage.py opa_environment staging --remove-instance opa-a     # decommission it (its history stays)

Tokens are never printed back: the Gavel→OPA token is read from an environment variable
(or managed by Gavel: manage.py opa_authz), and a new bundle or instance token is printed
once (Gavel keeps only its SHA-256). A second --instance-token for the same instance rotates
it: the old one works until the new one is first used or GAVEL_OPA_TOKEN_GRACE_HOURS pass.
With --token-file the new token is written to that file (mode 0600, replaced in one rename)
instead of printed: point OPA's `credentials.bearer.token_path` at it and a rotation needs no
OPA restart (`make run` and docker compose do this).

--remove-instance decommissions the instance (fleet/instances.py): its tokens are revoked
and Gavel stops pushing to it and waiting for it, but its publications, drift alerts and
decisions stay. --add-instance with a decommissioned name puts it back in service.
"""
import os
import secrets

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from fleet import credentials as opa_credentials
from fleet import instances
from fleet.delivery import storage
from fleet.models import Environment, GavelTokenState, OpaInstance


class Command(BaseCommand):
    help = "Create or change an environment: delivery, OPA instances, bundle token."

    def add_arguments(self, parser):
        parser.add_argument("environment")
        parser.add_argument("--opa-url", help="The environment's default OPA URL (blank: the OPA_URL setting)")
        parser.add_argument("--delivery", choices=Environment.Delivery.values)
        parser.add_argument("--bundle-store", choices=Environment.BundleStore.values,
                            help="Where a pull environment's OPAs download its bundle: Gavel's bundle service "
                                 "(gavel) or the S3-compatible bucket (object_storage, GAVEL_BUNDLE_S3_*)")
        parser.add_argument("--add-instance", nargs=2, metavar=("NAME", "URL"), action="append", default=[])
        parser.add_argument("--token-env", help="Variable holding the bearer token Gavel sends to the added instances")
        parser.add_argument("--remove-instance", metavar="NAME", action="append", default=[],
                            help="Decommission the instance: revoke its tokens, stop publishing to it; history stays")
        parser.add_argument("--new-bundle-token", action="store_true",
                            help="Make a bundle/status token for OPA to present; printed once")
        parser.add_argument("--instance-token", metavar="NAME", action="append", default=[],
                            help="Issue (or rotate) the token this instance presents to Gavel; printed once")
        parser.add_argument("--token-file", metavar="PATH",
                            help="Write the --instance-token to this file (mode 0600) instead of printing it")

    @transaction.atomic
    def handle(self, *args, **options):
        if options["token_file"] and len(options["instance_token"]) != 1:
            raise CommandError("--token-file holds one token: give exactly one --instance-token with it")
        environment, created = Environment.objects.get_or_create(name=options["environment"])
        if options["opa_url"] is not None:
            environment.opa_url = options["opa_url"]
        if options["delivery"]:
            environment.delivery = options["delivery"]
        environment.save()
        if options["bundle_store"]:
            try:
                storage.choose_store(environment, options["bundle_store"])
            except ValueError as exc:
                raise CommandError(str(exc)) from None
        token = ""
        if options["token_env"]:
            token = os.environ.get(options["token_env"], "")
            if not token:
                raise CommandError(f"{options['token_env']} is not set")
        for name, url in options["add_instance"]:
            existing = environment.instances.decommissioned().filter(name=name).first()
            if existing is not None:
                instances.reactivate(existing, url=url)
                self.stdout.write(f"{existing} is back in service (it was decommissioned)")
            # A token given here is the operator's: Gavel no longer rotates it (opa_authz.py).
            defaults = {"url": url, **({"token": token, "token_state": GavelTokenState.UNMANAGED} if token else {})}
            OpaInstance.objects.update_or_create(environment=environment, name=name, defaults=defaults)
        for name in options["remove_instance"]:
            instance = environment.instances.filter(name=name).first()
            if instance is None:
                raise CommandError(f"{environment.name} has no instance named {name}")
            instances.decommission(instance)
            self.stdout.write(f"{instance} decommissioned: its tokens are revoked, Gavel no longer publishes to it; "
                              "its publications, drift alerts and decisions stay")
        in_service = ", ".join(i.name for i in environment.instances.active()) or "none"
        retired = ", ".join(i.name for i in environment.instances.decommissioned())
        self.stdout.write(f"{environment.name}: {'created, ' if created else ''}{environment.get_delivery_display()}, "
                          f"instances: {in_service}" + (f" (decommissioned: {retired})" if retired else ""))
        for name in options["instance_token"]:
            instance, _ = OpaInstance.objects.get_or_create(environment=environment, name=name)
            if instance.decommissioned_at:
                raise CommandError(f"{instance} is decommissioned: --add-instance it again first")
            if options["token_file"]:
                try:
                    opa_credentials.issue_token_file(instance, options["token_file"])
                except OSError as exc:  # raised inside the transaction: nothing is issued
                    raise CommandError(f"cannot write the token file: {exc}") from exc
                self.stdout.write(f"token of {instance} written to {options['token_file']} (mode 0600)")
                continue
            _, instance_token = opa_credentials.issue_token(instance)
            self.stdout.write(f"token of {instance} (shown once): {instance_token}")
        if options["new_bundle_token"]:
            bundle_token = secrets.token_urlsafe(32)
            environment.set_bundle_token(bundle_token)
            self.stdout.write(f"bundle token (shown once): {bundle_token}")

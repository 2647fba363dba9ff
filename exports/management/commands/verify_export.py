"""manage.py verify_export ARCHIVE | FILE MANIFEST: is this export what this Gavel signed?

The same check as the stand-alone exports/verify_gavel_export.py (which needs no Gavel), with this
Gavel's public key as the default. Exits 0 good, 1 tampered, 2 cannot check.
"""
import sys

from django.core.management.base import BaseCommand

from exports import signing
from exports import verify_gavel_export as verifier


class Command(BaseCommand):
    help = ("Check an export (its archive, or its file and manifest): the manifest's signature, then the file's "
            "SHA-256, size and rows. Exits 0 good, 1 tampered, 2 cannot check.")
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", metavar="FILE", help="the archive, or the data file and its manifest")
        parser.add_argument("--public-key", help="base64, or a file holding it (default: this Gavel's key)")

    def handle(self, *args, files, public_key=None, **options):
        if len(files) > 2:
            self.stderr.write("Give the archive, or the data file and its manifest.")
            sys.exit(verifier.CANNOT_CHECK)
        status = verifier.main([*files, "--public-key", public_key or signing.public_key()])
        if status:
            sys.exit(status)

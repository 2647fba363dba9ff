"""manage.py verify_export FILE MANIFEST: does an exported file still hold what its manifest says?"""
import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from exports.services import verify


class Command(BaseCommand):
    help = "Check an export file against its manifest (SHA-256, size, row count); exits 1 when they differ."

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("manifest", type=Path)

    def handle(self, *args, file: Path, manifest: Path, **options):
        # Needs no database: anyone holding the two files can check them.
        try:
            expected = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CommandError(f"cannot read the manifest {manifest}: {exc}") from None
        if not isinstance(expected, dict):
            raise CommandError(f"{manifest} is not a Gavel export manifest")
        if not file.is_file():
            raise CommandError(f"no such file: {file}")
        problems = verify(file, expected)
        if problems:
            raise CommandError(f"{file} does NOT match {manifest}:\n  - " + "\n  - ".join(problems))
        self.stdout.write(self.style.SUCCESS(
            f"{file} matches {manifest}: {expected['row_count']} rows, sha256 {expected['sha256']}, "
            f"exported by {expected.get('exported_by')} at {expected.get('exported_at')}"))

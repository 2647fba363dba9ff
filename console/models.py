"""The console has no tables of its own yet. This module exists so Django sends the
console app its post_migrate signal (apps without a models module get none), which
keeps the role groups in step with roles.py."""

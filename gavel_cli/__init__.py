"""`gavel`: check configuration against the policies Gavel published, from CI.

Installable on its own (httpx and PyYAML only, no Django): `pip install ./gavel_cli` (the
`gavel-cli` distribution, gavel_cli/pyproject.toml) in a CI image, and set GAVEL_URL and
GAVEL_TOKEN (a CI service account's API token)."""

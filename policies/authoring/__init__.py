"""Tools for policy authors that save nothing: checking a draft (compile, lint, tests) so the
editor can show the errors at their lines, and the playground, which evaluates any input against a
draft or a saved version in Gavel's sandboxed OPA."""

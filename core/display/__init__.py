"""How pages show any stored decision: ids that route whatever they contain, and JSON of any
depth or size as bounded text."""

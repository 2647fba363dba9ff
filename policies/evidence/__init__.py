"""Evidence an auditor can file: a version's print view with its approval chain, its Rego as an
appendix with line numbers, page numbers and people's names; the same for the change between two
versions; and both as PDF (WeasyPrint), made from the very HTML the browser prints."""

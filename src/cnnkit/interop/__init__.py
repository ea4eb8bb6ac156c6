"""Interoperability with other frameworks' formats (the optional extras)."""

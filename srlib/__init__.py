"""srlib: the library behind the report, one module per concern (see README.md)."""

"""The ``mnesis`` command line."""

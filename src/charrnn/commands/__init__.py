"""Subcommands of the ``charrnn`` command line, one module each (see :mod:`charrnn.cli`)."""

"""Subcommands of the `labml` command line; each module has `register(subparsers)`."""

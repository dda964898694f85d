"""The Typer command-line interface. Commands are thin: parse, call one stage function, print.

A command imports its stage inside its function, a deferred import: `crmse --help` and every
command's parsing load no numpy or torch (tests/test_cli_conventions.py).
"""

"""One module per command: orchestration of the library and the registry.

Stages take plain arguments (no Typer objects) and return plain results, so the CLI, the
``crmse_cli.api`` facade and the tests all call the same code.
"""

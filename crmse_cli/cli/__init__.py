"""The Typer command-line interface. Commands are thin: parse, call one stage function, print."""

"""The `seg` command line: thin Typer commands over the engine."""

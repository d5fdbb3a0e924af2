"""Dataset converters: each writes the one segcli format (see segcli.data.format)."""

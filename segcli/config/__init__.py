"""Presets: TOML → typed, frozen dataclasses (schema.py), with extends and key=value overrides (load.py)."""

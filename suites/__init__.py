"""Suite definitions shipped with dynbench: the .toml files beside this marker file."""

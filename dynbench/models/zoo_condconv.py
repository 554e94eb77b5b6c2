"""Registry entries for the condconv variants."""

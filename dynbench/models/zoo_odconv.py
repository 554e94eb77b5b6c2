"""Registry entries for the odconv variants."""

"""Registry entries for the dyconv variants."""

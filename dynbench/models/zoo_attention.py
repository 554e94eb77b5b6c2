"""Registry entries for the attention variants."""

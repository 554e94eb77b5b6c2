"""Registry entries for the dcd variants."""

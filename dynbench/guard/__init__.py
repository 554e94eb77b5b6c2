"""The CI regression guard: params and MAdds of models against a committed baseline."""

"""Rule files → findings. Strict data (no expressions), a closed set of registered check kinds."""

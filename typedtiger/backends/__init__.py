"""Storage backends: the Backend protocol (base), Redis (redis) and in-process (fake)."""

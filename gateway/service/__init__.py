"""Use cases: each orders store, registry and sandbox calls for one thing a user does; no HTTP."""

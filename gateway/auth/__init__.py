"""Identity: client secrets, signing keys and JSON Web Tokens."""

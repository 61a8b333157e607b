"""Security primitives: password hashing, random tokens, signed values."""

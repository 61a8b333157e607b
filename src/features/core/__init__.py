"""Core features every product needs (authentication)."""

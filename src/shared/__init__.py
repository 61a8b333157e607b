"""Code every feature uses: configuration, database, web plumbing, security primitives.

Nothing in this package imports from ``features``.
"""

"""Feature slices. Each folder owns its tables, repository, service, handlers and templates."""

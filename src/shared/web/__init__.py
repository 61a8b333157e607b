"""Web plumbing shared by every feature: rendering, flash, CSRF, headers, errors, guards."""

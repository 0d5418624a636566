"""The DRF API: what the pages do, for scripts too (session + CSRF, or token auth)."""

"""The HQ console (Litestar + Jinja, server-rendered)."""

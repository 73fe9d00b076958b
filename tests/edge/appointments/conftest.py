"""The appliance fixtures of tests/edge/web (the real app over a seeded demo branch)."""

from tests.edge.web.conftest import api, client, clock, data_dir, demo_template

__all__ = ["api", "client", "clock", "data_dir", "demo_template"]

"""The appliance fixtures of the web tests (seeded demo data dir, in-process app, real server), shared here."""

from tests.edge.web.conftest import Api, Clock, api, appliance, client, clock, data_dir, demo_template

__all__ = ["Api", "Clock", "api", "appliance", "client", "clock", "data_dir", "demo_template"]

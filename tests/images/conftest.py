from tests.cloud.conftest import nats_server

__all__ = ["nats_server"]

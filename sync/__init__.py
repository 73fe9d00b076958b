"""The wire contract between appliance and cloud, and the replication that carries it."""

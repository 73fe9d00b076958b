"""The branch appliance: queue engine, store, API and device adapters."""

"""Platform operations at the hub (issue 16): metrics, rate limits, backups received, drills."""

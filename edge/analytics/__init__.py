"""Branch analytics on the appliance: the fact projection, KPIs, the CSV export and the report pages."""

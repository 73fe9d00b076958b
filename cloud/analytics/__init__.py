"""Analytics (issue 13): facts, rollups, KPI queries, exports, schedules, anomalies."""

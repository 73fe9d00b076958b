"""Local stand-ins for the notification providers' APIs (real HTTP servers speaking their request/callback shapes)."""

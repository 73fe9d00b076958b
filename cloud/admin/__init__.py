"""The HQ console's areas (issue 14): branches, configuration, audit, approvals, device fleet, supervisor."""

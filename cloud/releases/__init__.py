"""Fleet software updates (issue 17): signed releases, rollout groups, appliance acks."""

"""Customer notifications (issue 12): templates, policy, outbox, dispatcher, providers."""

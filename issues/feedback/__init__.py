"""What comes back after a mail leaves: provider events recorded once and acted on by the rules, webhooks."""

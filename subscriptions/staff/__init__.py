"""Staff pages for subscribers: import and export."""

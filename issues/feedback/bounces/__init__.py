"""The SMTP path hears back: VERP, returned mail read from a mailbox, a pipe or HTTP, and the same feedback rules."""

"""Readers' replies: mail that comes in, the editors' inbox, letters published in the archive."""

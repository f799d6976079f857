"""The audit trail: an append-only record of who did what to what, when and from where.

The lowest layer of the apps, so that subscriptions, issues and the API
can all call `audit_record(...)` from their services.
"""

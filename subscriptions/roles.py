"""The staff roles, Editors and Admins, and exactly the permissions each needs."""

from __future__ import annotations

EDITOR_PERMISSIONS = [
    ("issues", "issue", ["add", "change", "view"]),
    ("issues", "comment", ["change", "view"]),
    ("issues", "delivery", ["view"]),
    ("issues", "deliveryevent", ["view"]),
    ("subscriptions", "mailinglist", ["view"]),
    # The subscribers screen, read-only (dwvlist.access.READERS).
    ("subscriptions", "subscriber", ["browse"]),
]
ADMIN_PERMISSIONS = [
    ("issues", "issue", ["add", "change", "delete", "view"]),
    ("issues", "comment", ["change", "view"]),
    ("issues", "delivery", ["view"]),
    ("issues", "deliveryevent", ["view"]),
    ("issues", "unparsedbounce", ["change", "view"]),
    ("subscriptions", "mailinglist", ["add", "change", "delete", "view"]),
    ("subscriptions", "subscriber", ["add", "change", "delete", "view", "browse"]),
    ("subscriptions", "subscription", ["add", "change", "delete", "view"]),
    ("subscriptions", "suppression", ["add", "change", "delete", "view"]),
    ("subscriptions", "importjob", ["view"]),
    ("auth", "user", ["add", "change", "delete", "view"]),
    ("auth", "group", ["view"]),
    ("audit", "auditentry", ["view"]),
]
ROLES = {"Editors": EDITOR_PERMISSIONS, "Admins": ADMIN_PERMISSIONS}


def roles_ensure(apps) -> None:
    """Create the groups if missing and give them their permissions.

    Takes an app registry so the data migration can pass its historical one.
    """
    from django.contrib.auth.management import create_permissions

    for label in ("auth", "audit", "issues", "subscriptions"):
        try:
            app_config = apps.get_app_config(label)
        except LookupError:
            continue  # an app whose first migration has not run yet; it calls this again
        had_module = getattr(app_config, "models_module", None)
        # The migration state's app configs lack models_module, which
        # create_permissions checks before doing anything.
        app_config.models_module = had_module or True
        create_permissions(app_config, verbosity=0, apps=apps)
        app_config.models_module = had_module
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, spec in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        wanted = set()
        for app_label, model, actions in spec:
            for action in actions:
                permission = Permission.objects.filter(
                    content_type__app_label=app_label, codename=f"{action}_{model}"
                ).first()
                # A model added by a later migration has no permission yet;
                # that migration runs roles_ensure again.
                if permission is not None:
                    wanted.add(permission.pk)
        missing = wanted - set(group.permissions.values_list("pk", flat=True))
        if missing:
            group.permissions.add(*missing)

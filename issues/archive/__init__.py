"""The public archive of sent issues and its Atom feed."""

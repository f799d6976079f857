from django.contrib.sites.models import Site


def site(request):
    """Put the site's name (from the database) in every template."""
    try:
        name = Site.objects.get_current().name
    except Site.DoesNotExist:
        name = "dwvlist"
    return {"site_name": name}

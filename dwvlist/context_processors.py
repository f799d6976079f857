from django.contrib.sites.models import Site

from dwvlist import navigation


def site(request):
    """Put the site's name (from the database) in every template."""
    try:
        name = Site.objects.get_current().name
    except Site.DoesNotExist:
        name = "dwvlist"
    return {"site_name": name}


def staff_nav(request):
    """Put the staff navigation in every page of the editor area and the Django admin."""
    return {"staff_nav": navigation.staff_nav_items(request=request)}

"""The admins' page for API tokens: create (the secret is shown once), list, revoke."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from api import services
from api.forms import TokenForm
from api.models import ApiToken
from dwvlist.access import permission_required

# Tokens act as staff accounts, so whoever manages staff accounts manages them.
TOKEN_PERMISSION = "auth.change_user"
token_admin_required = permission_required(TOKEN_PERMISSION, refusal="Only admins manage API tokens.")


@never_cache
@require_http_methods(["GET", "POST"])
@token_admin_required
def tokens(request):
    """List the tokens and create one; a new token's secret is shown on this answer only."""
    form = TokenForm(request.POST or None, initial={"user": request.user.pk})
    created = None
    if request.method == "POST" and form.is_valid():
        try:
            created = services.api_token_create(
                user=form.cleaned_data["user"],
                name=form.cleaned_data["name"],
                scopes=form.cleaned_data["scopes"],
                actor=request.user,
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            form = TokenForm(initial={"user": request.user.pk})
    context = {
        "form": form,
        "created": created,
        "tokens": ApiToken.objects.select_related("user").order_by("revoked_at", "-created_at", "-id")[:200],
    }
    return render(request, "api/tokens.html", context, status=201 if created else 200)


@require_POST
@token_admin_required
def token_revoke(request, token_id: int):
    """Revoke a token: calls made with it fail from now on."""
    token = get_object_or_404(ApiToken, pk=token_id)
    if services.api_token_revoke(token=token, actor=request.user):
        messages.success(request, f"Revoked “{token.name}”: it no longer works.")
    else:
        messages.info(request, f"“{token.name}” was already revoked.")
    return redirect("api_tokens:list")

"""Readers' comments: the editors' inbox, answers by email, letters in the archive."""

from __future__ import annotations

from functools import wraps

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from dwvlist.emails import email_send
from issues.models import Comment, Issue

STAFF_GROUPS = ("Editors", "Admins")
ANSWER_MAX_CHARS = 20_000


# --- Selectors and services -----------------------------------------------------


def comments_published(*, issue: Issue) -> QuerySet[Comment]:
    """Return the letters published under the issue in the archive, oldest first."""
    return Comment.objects.filter(issue=issue, published=True).order_by("received_at")


def comment_handle(*, comment: Comment, user, handled: bool = True) -> None:
    """Mark the comment handled (or unhandled again)."""
    if handled:
        Comment.objects.filter(pk=comment.pk, status=Comment.Status.UNHANDLED).update(
            status=Comment.Status.HANDLED, handled_at=timezone.now(), handled_by=user
        )
    else:
        Comment.objects.filter(pk=comment.pk).update(status=Comment.Status.UNHANDLED, handled_at=None, handled_by=None)


def comment_answer(*, comment: Comment, user, text: str) -> None:
    """Mail the editor's answer to the writer, as a reply in their thread, and mark the comment handled."""
    mailing_list = comment.issue.lists.order_by("pk").first() if comment.issue else None
    from_email = f'"{mailing_list.from_name}" <{mailing_list.from_email}>' if mailing_list else None
    headers = {}
    if comment.message_id:
        headers = {"In-Reply-To": comment.message_id, "References": comment.message_id}
    email_send(
        "comment-answer",
        to=comment.sender_email,
        context={"comment": comment, "answer": text, "mailing_list": mailing_list},
        from_email=from_email,
        reply_to=mailing_list.reply_to if mailing_list and mailing_list.reply_to else None,
        headers=headers,
    )
    now = timezone.now()
    Comment.objects.filter(pk=comment.pk).update(answer_text=text, answered_at=now, answered_by=user)
    comment_handle(comment=comment, user=user)


def comment_publish(*, comment: Comment, user) -> None:
    """Publish the comment as a letter under its issue, recording the writer's consent."""
    now = timezone.now()
    Comment.objects.filter(pk=comment.pk, issue__isnull=False).update(
        published=True, published_at=now, consent_at=now, consent_by=user
    )


def comment_unpublish(*, comment: Comment) -> None:
    """Take the letter out of the archive (the consent record stays)."""
    Comment.objects.filter(pk=comment.pk).update(published=False, published_at=None)


# --- Forms ----------------------------------------------------------------------------


class AnswerForm(forms.Form):
    text = forms.CharField(
        label="Your answer", widget=forms.Textarea(attrs={"rows": 10}), max_length=ANSWER_MAX_CHARS, strip=True
    )

    def clean_text(self) -> str:
        text = self.cleaned_data["text"]
        if not text:
            raise forms.ValidationError("Write an answer first.")
        return text


class PublishForm(forms.Form):
    consent = forms.BooleanField(
        label="The writer agreed to have this letter published in the archive.",
        required=True,
        error_messages={"required": "Tick the box to record the writer's consent before publishing."},
    )


# --- Views ------------------------------------------------------------------------------


def staff_required(view):
    """Allow editors, admins and superusers; send others to log in, or refuse them."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        user = request.user
        if not user.is_authenticated:
            return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
        allowed = user.is_superuser or (user.is_staff and user.groups.filter(name__in=STAFF_GROUPS).exists())
        if not allowed:
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapped


FILTERS = {
    "unhandled": ("Unhandled", {"status": Comment.Status.UNHANDLED}),
    "handled": ("Handled", {"status": Comment.Status.HANDLED}),
    "published": ("Published", {"published": True}),
    "all": ("All", {}),
}


@require_GET
@staff_required
def comment_list(request):
    shown = request.GET.get("show", "unhandled")
    if shown not in FILTERS:
        shown = "unhandled"
    comments = Comment.objects.filter(**FILTERS[shown][1]).select_related("issue").order_by("-received_at")
    page = Paginator(comments, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "issues/comments/list.html",
        {
            "page": page,
            "shown": shown,
            "filters": [(key, label) for key, (label, _) in FILTERS.items()],
            "unhandled_count": Comment.objects.filter(status=Comment.Status.UNHANDLED).count(),
        },
    )


@staff_required
def comment_detail(request, comment_id: int):
    comment = get_object_or_404(Comment.objects.select_related("issue", "subscriber"), pk=comment_id)
    return render(
        request,
        "issues/comments/detail.html",
        {"comment": comment, "answer_form": AnswerForm(), "publish_form": PublishForm()},
    )


@require_POST
@staff_required
def comment_mark(request, comment_id: int):
    comment = get_object_or_404(Comment, pk=comment_id)
    handled = request.POST.get("handled", "1") == "1"
    comment_handle(comment=comment, user=request.user, handled=handled)
    messages.success(request, "Marked handled." if handled else "Marked unhandled.")
    return redirect("comments:detail", comment_id=comment.pk)


@require_POST
@staff_required
def comment_answer_view(request, comment_id: int):
    comment = get_object_or_404(Comment.objects.select_related("issue"), pk=comment_id)
    form = AnswerForm(request.POST)
    if not form.is_valid():
        context = {"comment": comment, "answer_form": form, "publish_form": PublishForm()}
        return render(request, "issues/comments/detail.html", context, status=400)
    comment_answer(comment=comment, user=request.user, text=form.cleaned_data["text"])
    messages.success(request, f"Answer sent to {comment.sender_email}.")
    return redirect("comments:detail", comment_id=comment.pk)


@require_POST
@staff_required
def comment_publish_view(request, comment_id: int):
    comment = get_object_or_404(Comment.objects.select_related("issue"), pk=comment_id)
    if request.POST.get("action") == "unpublish":
        comment_unpublish(comment=comment)
        messages.success(request, "Taken out of the archive.")
        return redirect("comments:detail", comment_id=comment.pk)
    form = PublishForm(request.POST)
    if comment.issue is None:
        form.add_error(None, "Only a reply to an issue can be published under it.")
    if not form.is_valid():
        context = {"comment": comment, "answer_form": AnswerForm(), "publish_form": form}
        return render(request, "issues/comments/detail.html", context, status=400)
    comment_publish(comment=comment, user=request.user)
    messages.success(request, "Published as a letter in the archive.")
    return redirect("comments:detail", comment_id=comment.pk)

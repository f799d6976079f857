"""Readers' comments: the editors' inbox, answers by email, letters in the archive."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from dwvlist.access import comments_required
from issues.comments.forms import AnswerForm, PublishForm, RequestForm
from issues.comments.services import (
    comment_answer,
    comment_handle,
    comment_publish,
    comment_request,
    comment_request_confirm,
    comment_request_leave,
    comment_unpublish,
)
from issues.models import Comment

FILTERS = {
    "unhandled": ("Unhandled", {"status": Comment.Status.UNHANDLED}),
    "handled": ("Handled", {"status": Comment.Status.HANDLED}),
    "published": ("Published", {"published": True}),
    "all": ("All", {}),
}


@require_GET
@comments_required
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


@comments_required
def comment_detail(request, comment_id: int):
    comment = get_object_or_404(Comment.objects.select_related("issue", "subscriber", "mailing_list"), pk=comment_id)
    return render(request, "issues/comments/detail.html", _detail_context(comment))


def _detail_context(comment: Comment, **forms) -> dict:
    return {
        "comment": comment,
        "answer_form": forms.get("answer_form") or AnswerForm(),
        "publish_form": forms.get("publish_form") or PublishForm(),
        "mail_request": comment_request(comment=comment),
        "request_form": RequestForm(initial={"mailing_list": comment.mailing_list}),
    }


@require_POST
@comments_required
def comment_mark(request, comment_id: int):
    comment = get_object_or_404(Comment, pk=comment_id)
    handled = request.POST.get("handled", "1") == "1"
    comment_handle(comment=comment, user=request.user, handled=handled)
    messages.success(request, "Marked handled." if handled else "Marked unhandled.")
    return redirect("comments:detail", comment_id=comment.pk)


@require_POST
@comments_required
def comment_answer_view(request, comment_id: int):
    comment = get_object_or_404(Comment.objects.select_related("issue"), pk=comment_id)
    form = AnswerForm(request.POST)
    if not form.is_valid():
        return render(request, "issues/comments/detail.html", _detail_context(comment, answer_form=form), status=400)
    comment_answer(comment=comment, user=request.user, text=form.cleaned_data["text"])
    messages.success(request, f"Answer sent to {comment.sender_email}.")
    return redirect("comments:detail", comment_id=comment.pk)


@require_POST
@comments_required
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
        return render(request, "issues/comments/detail.html", _detail_context(comment, publish_form=form), status=400)
    comment_publish(comment=comment, user=request.user)
    messages.success(request, "Published as a letter in the archive.")
    return redirect("comments:detail", comment_id=comment.pk)


@require_POST
@comments_required
def comment_request_view(request, comment_id: int):
    """Act on a mail that asks to subscribe or to leave: a confirmation mail, or the link that leaves."""
    comment = get_object_or_404(Comment, pk=comment_id)
    form = RequestForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose the list, then press the button again.")
        return redirect("comments:detail", comment_id=comment.pk)
    mailing_list = form.cleaned_data["mailing_list"]
    if form.cleaned_data["action"] == "subscribe":
        sent = comment_request_confirm(comment=comment, user=request.user, mailing_list=mailing_list)
        done = f"A confirmation mail for {mailing_list} is on its way to {comment.sender_email}."
    else:
        sent = comment_request_leave(comment=comment, user=request.user, mailing_list=mailing_list)
        done = f"The link that leaves {mailing_list} is on its way to {comment.sender_email}."
    if sent:
        messages.success(request, done + " Marked handled.")
    else:
        messages.info(
            request, "No mail went out: this address was sent one recently, or must not be mailed. Marked handled."
        )
    return redirect("comments:detail", comment_id=comment.pk)

"""Readers' comments: the editors' inbox, answers by email, letters in the archive."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from dwvlist.access import comments_required
from issues.comments.forms import AnswerForm, PublishForm
from issues.comments.services import comment_answer, comment_handle, comment_publish, comment_unpublish
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
    comment = get_object_or_404(Comment.objects.select_related("issue", "subscriber"), pk=comment_id)
    return render(
        request,
        "issues/comments/detail.html",
        {"comment": comment, "answer_form": AnswerForm(), "publish_form": PublishForm()},
    )


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
        context = {"comment": comment, "answer_form": form, "publish_form": PublishForm()}
        return render(request, "issues/comments/detail.html", context, status=400)
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
        context = {"comment": comment, "answer_form": AnswerForm(), "publish_form": form}
        return render(request, "issues/comments/detail.html", context, status=400)
    comment_publish(comment=comment, user=request.user)
    messages.success(request, "Published as a letter in the archive.")
    return redirect("comments:detail", comment_id=comment.pk)

"""RFC 8058 one-click unsubscribe, made the way a mailbox provider makes it: over real HTTP."""

import urllib.request
import uuid

import pytest

from issues.models import Issue
from subscriptions.links import list_headers, unsubscribe_mailto_for, unsubscribe_url
from subscriptions.models import Subscription


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a redirect would surface as an HTTPError


def _post(url: str, body: bytes, content_type: str):
    opener = urllib.request.build_opener(_NoRedirect)  # no cookie processor either
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    return opener.open(request, timeout=20)


def _live(url: str, live_server) -> str:
    return live_server.url + "/" + url.split("://", 1)[1].split("/", 1)[1]


@pytest.fixture
def header_url(live_server, transactional_db, news, active_reader):
    issue = Issue.objects.create(title="Issue one", body="text")
    url = unsubscribe_url(subscriber_id=active_reader.pk, list_id=news.pk, issue_id=issue.pk)
    # The URL the provider calls is the one in the List-Unsubscribe header.
    mailto = unsubscribe_mailto_for(mailing_list=news, subscriber_id=active_reader.pk, issue_id=issue.pk)
    header = list_headers(mailing_list=news, unsubscribe=url, mailto=mailto)["List-Unsubscribe"]
    assert header.startswith(f"<{url}>")
    return _live(url, live_server), issue


def test_one_click_form_encoded_post_unsubscribes_without_cookies_or_csrf(header_url):
    url, issue = header_url
    response = _post(url, b"List-Unsubscribe=One-Click", "application/x-www-form-urlencoded")
    assert response.status == 200
    assert response.geturl() == url
    subscription = Subscription.objects.get()
    assert subscription.status == "unsubscribed"
    assert subscription.unsubscribe_source == "one_click"
    assert subscription.unsubscribe_issue_id == issue.pk


def test_one_click_multipart_post_unsubscribes(header_url):
    url, _ = header_url
    boundary = uuid.uuid4().hex
    body = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
        "One-Click\r\n"
        f"--{boundary}--\r\n"
    ).encode()
    response = _post(url, body, f"multipart/form-data; boundary={boundary}")
    assert response.status == 200
    assert Subscription.objects.get().unsubscribe_source == "one_click"


def test_one_click_twice_is_harmless(header_url):
    url, _ = header_url
    _post(url, b"List-Unsubscribe=One-Click", "application/x-www-form-urlencoded")
    first = Subscription.objects.get().unsubscribed_at
    response = _post(url, b"List-Unsubscribe=One-Click", "application/x-www-form-urlencoded")
    assert response.status == 200
    assert Subscription.objects.get().unsubscribed_at == first

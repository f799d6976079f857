"""The client's real address behind a proxy: limits and lockouts punish only the one who misbehaves."""

from __future__ import annotations

import re
import time

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher, make_password
from django.core.exceptions import ImproperlyConfigured
from django.test import RequestFactory

from dwvlist.clientip import client_ip, trusted_networks_parse
from subscriptions.models import MailingList, Subscription
from tests.conftest import _session_tmp
from tests.fakes.proxy import ForwardingProxy, Gunicorn, visitor

CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


@pytest.mark.parametrize(
    ("trusted", "remote", "forwarded", "expected"),
    [
        # No trusted proxy: the header is anyone's to forge, so it is ignored.
        ([], "203.0.113.5", "198.51.100.1", "203.0.113.5"),
        # A connection that is not from a trusted proxy: header ignored.
        (["10.0.0.0/8"], "203.0.113.5", "198.51.100.1", "203.0.113.5"),
        # From the proxy: the right-most entry that is not a proxy of ours.
        (["10.0.0.0/8"], "10.0.0.2", "198.51.100.1", "198.51.100.1"),
        (["10.0.0.0/8"], "10.0.0.2", "6.6.6.6, 198.51.100.1", "198.51.100.1"),
        (["10.0.0.0/8", "192.0.2.7"], "10.0.0.2", "6.6.6.6, 198.51.100.1, 192.0.2.7, 10.1.2.3", "198.51.100.1"),
        # Junk and forged entries to the left of the real one do not matter.
        (["10.0.0.0/8"], "10.0.0.2", "not-an-ip, <script>, 198.51.100.1", "198.51.100.1"),
        # Ports, IPv6 in brackets, IPv4-mapped IPv6.
        (["10.0.0.0/8"], "10.0.0.2", "[2001:db8::1]:4711", "2001:db8::1"),
        (["10.0.0.0/8"], "10.0.0.2", "198.51.100.1:5555", "198.51.100.1"),
        (["::1"], "::1", "::ffff:198.51.100.1", "198.51.100.1"),
        # The proxy sent no header (a health check from the proxy itself).
        (["10.0.0.0/8"], "10.0.0.2", "", "10.0.0.2"),
        # Everything is ours: the left-most hop is where it came from.
        (["10.0.0.0/8"], "10.0.0.2", "10.9.9.9, 10.0.0.3", "10.9.9.9"),
    ],
)
def test_client_address_is_the_rightmost_untrusted_hop(settings, trusted, remote, forwarded, expected):
    settings.TRUSTED_PROXIES = trusted
    request = RequestFactory().get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)
    assert client_ip(request) == expected


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "proxy.example.org", "10.0.0.", "*"])
def test_a_bad_trusted_proxies_entry_stops_start_up_naming_it(entry):
    with pytest.raises(ImproperlyConfigured, match="TRUSTED_PROXIES"):
        trusted_networks_parse(["127.0.0.1", entry])


# --- Through a real proxy hop: gunicorn with DEBUG off behind a forwarding proxy -----------------


@pytest.fixture
def behind_proxy(transactional_db, request):
    server = Gunicorn(_session_tmp / f"gunicorn-{request.node.name[:40]}.log", TRUSTED_PROXIES="127.0.0.1")
    proxy = ForwardingProxy(server.address)
    try:
        yield server, proxy
    finally:
        proxy.stop()
        server.stop()


def _away_from_a_minute_boundary() -> None:
    # The subscribe limit counts per wall-clock minute; keep the test inside one.
    if time.time() % 60 > 45:
        time.sleep(61 - time.time() % 60)


def _subscribe(session, base: str, email: str, **headers) -> None:
    response = session.post(
        f"{base}/subscribe/",
        data={"email": email, "name": "", "lists": ["news"]},
        headers=headers,
        allow_redirects=False,
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/subscribe/check-inbox/"


@pytest.mark.slow
def test_one_clients_flood_does_not_use_up_another_readers_subscribe_limit(behind_proxy):
    _server, proxy = behind_proxy
    MailingList.objects.create(name="News", slug="news", from_name="News", from_email="news@example.org")
    flooder, reader = visitor("127.0.0.2"), visitor("127.0.0.3")
    _away_from_a_minute_boundary()

    # Ten posts a minute is the limit; the flooder also forges the header.
    for n in range(12):
        _subscribe(flooder, proxy.url, f"junk{n}@example.org", **{"X-Forwarded-For": "127.0.0.3"})
    _subscribe(reader, proxy.url, "reader@example.org")

    assert Subscription.objects.filter(subscriber__email__startswith="junk").count() == 10
    real = Subscription.objects.get(subscriber__email="reader@example.org")
    assert real.consent_detail == "web form, client 127.0.0.3"
    assert Subscription.objects.get(subscriber__email="junk0@example.org").consent_detail == (
        "web form, client 127.0.0.2"
    )


@pytest.mark.slow
def test_a_forged_header_sent_straight_to_the_app_is_ignored(behind_proxy):
    server, _ = behind_proxy
    MailingList.objects.create(name="News", slug="news", from_name="News", from_email="news@example.org")
    # Not through the proxy: the connection comes from 127.0.0.2, which is not trusted.
    _subscribe(visitor("127.0.0.2"), server.url, "direct@example.org", **{"X-Forwarded-For": "198.51.100.77"})
    subscription = Subscription.objects.get(subscriber__email="direct@example.org")
    assert subscription.consent_detail == "web form, client 127.0.0.2"


def _login(session, base: str, password: str) -> int:
    page = session.get(f"{base}/editor/login/")
    token = CSRF.search(page.text).group(1)
    response = session.post(
        f"{base}/editor/login/",
        data={"csrfmiddlewaretoken": token, "username": "chief", "password": password, "next": ""},
        headers={"Referer": f"{base}/editor/login/"},
        allow_redirects=False,
    )
    return response.status_code


@pytest.mark.slow
def test_wrong_passwords_from_one_client_do_not_lock_out_the_admin_logging_in_from_another(
    behind_proxy, django_user_model
):
    _, proxy = behind_proxy
    chief = django_user_model.objects.create_superuser("chief", "chief@example.org")
    # The server runs with the production hasher, not the tests' fast one.
    chief.password = make_password("the-real-passphrase-2026", hasher=PBKDF2PasswordHasher())
    chief.save()
    attacker, admin = visitor("127.0.0.2"), visitor("127.0.0.4")

    statuses = [_login(attacker, proxy.url, f"guess-{n}") for n in range(6)]
    assert statuses[:4] == [200, 200, 200, 200]
    assert statuses[-1] == 429
    # The attacker stays locked out even with the right password...
    assert _login(attacker, proxy.url, "the-real-passphrase-2026") == 429
    # ...and cannot get round it by claiming another address.
    attacker.headers["X-Forwarded-For"] = "127.0.0.9"
    assert _login(attacker, proxy.url, "the-real-passphrase-2026") == 429
    # The admin, from their own address, logs in.
    assert _login(admin, proxy.url, "the-real-passphrase-2026") == 302
    assert admin.get(f"{proxy.url}/editor/", allow_redirects=False).status_code == 200

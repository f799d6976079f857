"""Real-browser journeys: Playwright drives Debian's chromium against a live server and a real worker.

They skip, naming what is missing, without the playwright package,
/usr/bin/chromium or node_modules/axe-core; .ci/run installs all three.
Screenshots of every step go to test-artifacts/journeys/<test>/ when a
test fails, or always with JOURNEY_SCREENSHOTS=1.
"""

from __future__ import annotations

import os
import tempfile

import django.apps
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from subscriptions.models import MailingList, Subscriber, Subscription
from subscriptions.roles import roles_ensure
from tests.conftest import WorkerProcess, child_env
from tests.journeys.journey import CHROMIUM, CHROMIUM_ARGS, SCREENSHOT_DIR, Journey, journeys_missing

PASSWORD = "journey-password-2026"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # Keep each phase's report on the test, so the journey fixture can tell
    # at teardown whether the test failed and its screenshots are wanted.
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture(scope="package")
def browser():
    """Launch one headless chromium for the whole package, with a fresh profile."""
    missing = journeys_missing()
    if missing:
        pytest.skip("browser journeys need " + ", ".join(missing))
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an asyncio loop running on this thread, and
    # Django refuses ORM calls from a thread with a running loop. The test
    # code here is plain synchronous code, so lift the guard, but only while
    # the browser is up: the rest of the suite keeps Django's check.
    before = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with tempfile.TemporaryDirectory(prefix="dwvlist-chromium-") as profile:
        playwright = sync_playwright().start()
        try:
            # Playwright gives every launch a fresh temporary profile; the
            # temporary HOME keeps chromium's other files out of the real one.
            launched = playwright.chromium.launch(
                executable_path=str(CHROMIUM),
                args=CHROMIUM_ARGS,
                env={**os.environ, "HOME": profile},
            )
            try:
                yield launched
            finally:
                launched.close()
        finally:
            playwright.stop()
            if before is None:
                os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
            else:
                os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = before


@pytest.fixture
def axe_available():
    """Skip, naming what is missing, unless axe-core can be injected into pages."""
    missing = journeys_missing(axe=True)
    if missing:
        pytest.skip("accessibility checks need " + ", ".join(missing))


@pytest.fixture
def journey(request, browser, live_server, settings):
    """Open a fresh browser context (no cookies) on the live server; save screenshots if asked or failed."""
    settings.SITE_URL = live_server.url
    context = browser.new_context(viewport={"width": 1100, "height": 800}, accept_downloads=True)
    context.set_default_timeout(15_000)
    trip = Journey(page=context.new_page(), base_url=live_server.url)
    try:
        yield trip
        # Every page's script and style is allowed by its own policy: nothing was blocked.
        assert trip.csp_refusals == []
    finally:
        call = getattr(request.node, "report_call", None)
        failed = call is None or call.failed
        if failed:
            trip.step("when it failed")
        if failed or os.environ.get("JOURNEY_SCREENSHOTS") == "1":
            folder = SCREENSHOT_DIR / request.node.name
            written = trip.screenshots_write(folder)
            print(f"{len(written)} screenshots in {folder}")
        context.close()


@pytest.fixture
def journey_worker(outbox, live_server, settings):
    """Start a real Celery worker that writes mail to `outbox` with links to the live server."""
    # The worker reads OUTBOX_DIR and SITE_URL from its environment once, at
    # start: `outbox` has already pointed settings at this test's folder.
    settings.SITE_URL = live_server.url
    worker = WorkerProcess(env=child_env(SITE_URL=live_server.url))
    try:
        worker.wait_ready()
        yield worker
    finally:
        worker.stop()


@pytest.fixture
def news(transactional_db):
    return MailingList.objects.create(
        name="Detroit Workers' Voice",
        slug="dwv",
        description="News and analysis for working people.",
        from_name="DWV",
        from_email="dwv@example.org",
        reply_to="desk@example.org",
    )


def readers_create(*, mailing_list: MailingList, count: int, prefix: str = "reader") -> list[Subscriber]:
    """Create `count` confirmed, active readers of the list."""
    now = timezone.now()
    Subscriber.objects.bulk_create(
        Subscriber(email=f"{prefix}{n:03d}@example.org", name=f"Reader {n}") for n in range(count)
    )
    # Read back rather than trust bulk_create to fill in primary keys.
    readers = list(Subscriber.objects.filter(email__startswith=prefix).order_by("email"))
    Subscription.objects.bulk_create(
        Subscription(
            subscriber=reader,
            mailing_list=mailing_list,
            status=Subscription.Status.ACTIVE,
            consent_source=Subscription.ConsentSource.FORM,
            confirmed_at=now,
        )
        for reader in readers
    )
    return readers


def staff_create(*, username: str, group: str):
    """Create a staff user in one of the roles' groups, with PASSWORD."""
    # Transactional tests empty every table, the data migration's groups too.
    roles_ensure(django.apps.apps)
    user = get_user_model().objects.create_user(
        username=username, email=f"{username}@example.org", password=PASSWORD, is_staff=True
    )
    user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def editor(transactional_db):
    return staff_create(username="editor", group="Editors")


@pytest.fixture
def admin(transactional_db):
    return staff_create(username="admin", group="Admins")

"""An admin in a real browser: import a CSV with broken rows, read the report, export."""

from __future__ import annotations

import csv
import hashlib
import io
import re
from pathlib import Path

import pytest

from subscriptions.models import Subscription
from tests.journeys.conftest import PASSWORD
from tests.journeys.journey import expect

pytestmark = [pytest.mark.journey, pytest.mark.worker, pytest.mark.slow]

# Row numbers count the header as row 1, as a spreadsheet shows them.
UPLOAD = """\
email,name,lists
ana@example.org,Ana,
ben@example.org,Ben,
not-an-email,Bad One,
carl@example.org,Carl,nosuchlist
dina@example.org,Dina,
ANA@example.org,Ana again,
,No Address,
"""
GOOD = ["ana@example.org", "ben@example.org", "dina@example.org"]


def test_admin_imports_a_csv_with_broken_rows_reads_the_report_and_exports(
    journey, outbox, journey_worker, news, admin
):
    page = journey.page
    journey.login(username="admin", password=PASSWORD)
    journey.goto("/editor/subscribers/import/", "import page")
    expect(page.get_by_role("heading", level=1)).to_have_text("Import and export subscribers")

    # Upload through the form.
    form = page.locator("form", has=page.get_by_role("button", name="Start the import"))
    form.get_by_label("CSV file").set_input_files(
        files=[{"name": "readers.csv", "mimeType": "text/csv", "buffer": UPLOAD.encode()}]
    )
    form.get_by_label("List", exact=True).select_option(label="Detroit Workers' Voice")
    form.get_by_label("Consent already given: subscribe at once").check()
    form.get_by_label("Lists column (optional)").fill("lists")
    journey.step("import form filled")
    form.get_by_role("button", name="Start the import").click()

    # The job page reloads itself until the worker is done.
    expect(page.get_by_role("heading", level=1)).to_have_text("Import of “readers.csv”")
    expect(page.locator("#progress .status")).to_have_text("Done", timeout=45_000)
    journey.step("import done")
    figures = page.locator("#progress dl")
    expect(figures).to_contain_text("3 (3 new readers)")
    expect(figures.locator("dt:has-text('Bad rows') + dd")).to_have_text("3")
    expect(figures.locator("dt:has-text('Repeated in the file') + dd")).to_have_text("1")

    # The per-row report names each broken row and why.
    bad = page.get_by_role("region", name="Bad rows").get_by_role("table")
    rows = [[cell.strip() for cell in row] for row in _table_rows(bad)]
    assert [row[0] for row in rows] == ["4", "5", "8"], rows
    assert rows[0][1] == "not-an-email"
    assert rows[1][1] == "carl@example.org"
    assert "nosuchlist" in rows[1][2]
    assert all(row[2] for row in rows), rows
    journey.step("bad rows report")
    active = Subscription.objects.filter(mailing_list=news, status=Subscription.Status.ACTIVE)
    assert sorted(active.values_list("subscriber__email", flat=True)) == GOOD

    # Export the list as CSV: a worker writes it, the job's page offers it once whole.
    page.get_by_role("link", name="Back to import and export").click()
    export = page.locator("form", has=page.get_by_role("button", name="Start the export"))
    export.get_by_label("List", exact=True).select_option(label="Detroit Workers' Voice")
    journey.step("export form")
    export.get_by_role("button", name="Start the export").click()
    expect(page.get_by_role("heading", name="Download")).to_be_visible(timeout=60_000)
    journey.step("export ready")
    checksum = page.locator("code.checksum").text_content()
    with page.expect_download() as download_info:
        page.get_by_role("link", name=re.compile(r"^subscribers-dwv-.*\.csv$")).click()
    download = download_info.value
    assert download.suggested_filename.startswith("subscribers-dwv-")
    assert download.suggested_filename.endswith(".csv")
    assert hashlib.sha256(Path(download.path()).read_bytes()).hexdigest() == checksum
    exported = list(csv.DictReader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))
    assert sorted(row["email"] for row in exported) == GOOD
    assert {row["status"] for row in exported} == {"active"}
    assert {row["list"] for row in exported} == {"dwv"}


def _table_rows(table) -> list[list[str]]:
    return table.locator("tbody tr").evaluate_all(
        "rows => rows.map(row => Array.from(row.cells, cell => cell.textContent))"
    )


def test_admin_finds_a_reader_among_many_sees_why_mail_stopped_and_suppresses_them(journey, news, admin):
    from django.utils import timezone

    from issues.models import Delivery, DeliveryEvent, Issue
    from subscriptions.models import Subscriber
    from tests.journeys.conftest import readers_create

    readers_create(mailing_list=news, count=300)
    treasurer = Subscriber.objects.create(email="treasurer@union-local600.org", name="Ana Ruiz")
    Subscription.objects.create(
        subscriber=treasurer,
        mailing_list=news,
        status=Subscription.Status.UNSUBSCRIBED,
        consent_source=Subscription.ConsentSource.IMPORT,
        consent_detail="CSV import #3: members.csv",
        unsubscribed_at=timezone.now(),
        unsubscribe_source=Subscription.UnsubscribeSource.BOUNCE,
    )
    issue = Issue.objects.create(title="Strike vote", body="x", status="sent", sent_at=timezone.now())
    delivery = Delivery.objects.create(
        issue=issue,
        subscriber=treasurer,
        mailing_list=news,
        email=treasurer.email,
        status="bounced",
        sent_at=timezone.now(),
        attempts=1,
        last_error="550 5.1.1 The mailbox does not exist",
    )
    DeliveryEvent.objects.create(
        provider="mailgun",
        event_id="b1",
        event_type="bounced",
        delivery=delivery,
        recipient=treasurer.email,
        reject_reason="bounced",
        description="mailbox does not exist",
    )

    page = journey.page
    journey.login(username="admin", password=PASSWORD)
    nav = page.get_by_role("navigation", name="Editor area")
    nav.get_by_role("link", name="Subscribers").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Subscribers")
    expect(nav.get_by_role("link", name="Subscribers")).to_have_attribute("aria-current", "page")
    journey.step("subscribers screen")

    page.get_by_label("Search", exact=True).fill("union-local")
    page.get_by_role("button", name="Search").click()
    results = page.get_by_role("table")
    expect(results.locator("tbody tr")).to_have_count(1)
    journey.step("search results")
    results.get_by_role("link", name="treasurer@union-local600.org").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("treasurer@union-local600.org")
    summary = page.get_by_role("region", name="Does this reader get mail?")
    expect(summary).to_contain_text("Left Detroit Workers' Voice on")
    expect(summary).to_contain_text("(bounce)")
    expect(page.get_by_role("region", name="Deliveries")).to_contain_text("550 5.1.1 The mailbox does not exist")
    expect(page.get_by_role("region", name="Events from the provider")).to_contain_text("mailbox does not exist")
    expect(page.get_by_role("region", name="Subscriptions and consent")).to_contain_text("CSV import #3: members.csv")
    journey.step("reader page")

    page.get_by_role("link", name="Suppress the address").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Suppress the address?")
    journey.step("suppress confirmation")
    page.get_by_role("button", name="Suppress the address").click()
    expect(page.get_by_role("status")).to_contain_text("Suppressed: this address will never be mailed again.")
    expect(page.get_by_role("region", name="Does this reader get mail?")).to_contain_text("Never mailed")
    journey.step("suppressed")

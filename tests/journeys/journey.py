"""What the journeys share: a page that photographs its steps, axe-core, and the outbox."""

from __future__ import annotations

import email
import email.policy
import re
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
AXE_SCRIPT = ROOT / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOT_DIR = ROOT / "test-artifacts" / "journeys"
# The machine's network is closed: without the background-networking flags
# Chromium keeps dialling out and its refused connections slow it down.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Sandboxed iframes (the editor's preview of the mail) otherwise get a
    # process of their own: headless screenshots leave them blank, and after
    # one the page's next click is lost. The sandbox itself still applies.
    "--disable-features=IsolateSandboxedIframes",
]
BLOCKING_IMPACTS = ("serious", "critical")


def expect(target):
    """Return Playwright's retrying assertions on a page or locator.

    Imported late, so that without playwright the tests are collected and
    skip with a message instead of failing to import.
    """
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def journeys_missing(*, axe: bool = False) -> list[str]:
    """Return what the browser journeys (and, with axe, the accessibility checks) need and this machine lacks."""
    missing = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright Python package (pip install -r requirements-dev.txt)")
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    if axe and not AXE_SCRIPT.exists():
        missing.append("node_modules/axe-core (npm ci)")
    return missing


@dataclass
class Journey:
    """One person's browser tab, photographing each named step.

    The pictures are kept in memory and written out only when the test fails
    or JOURNEY_SCREENSHOTS=1 asks for them (see conftest.py).
    """

    page: Page
    base_url: str
    shots: list[tuple[str, bytes]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    csp_refusals: list[str] = field(default_factory=list)  # what the Content-Security-Policy blocked

    def __post_init__(self) -> None:
        def note(message) -> None:
            if "Content Security Policy" in message.text:
                self.csp_refusals.append(f"{self.page.url}: {message.text[:300]}")

        self.page.on("console", note)

    def url(self, path: str) -> str:
        return self.base_url + path

    def goto(self, path_or_url: str, step: str | None = None):
        """Open a path on the live server (or a full URL) and photograph it."""
        target = path_or_url if "://" in path_or_url else self.url(path_or_url)
        response = self.page.goto(target)
        self.step(step or path_or_url)
        return response

    def step(self, name: str, *, element: Locator | None = None) -> None:
        """Photograph the page (or one element of it) as it is now, under a numbered name."""
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60] or "page"
        try:
            # Chromium does not paint an iframe outside the viewport, so a
            # full-page picture shows it empty: photograph it on its own.
            png = element.screenshot() if element is not None else self.page.screenshot(full_page=True)
        except Exception as exc:  # A picture must never be why a journey fails.
            png = None
            print(f"screenshot of {name!r} failed: {exc}")
        if png is not None:
            self.shots.append((f"{len(self.shots) + 1:02d}-{slug}.png", png))

    def screenshots_write(self, folder: Path) -> list[Path]:
        """Write the pictures taken so far into a fresh folder; return their paths."""
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.png"):
            old.unlink()
        written = []
        for name, png in self.shots:
            path = folder / name
            path.write_bytes(png)
            written.append(path)
        return written

    def login(self, *, username: str, password: str) -> None:
        self.goto("/editor/login/", "login")
        self.page.get_by_label("Username").fill(username)
        self.page.get_by_label("Password").fill(password)
        self.page.get_by_role("button", name="Log in").click()
        self.page.wait_for_url("**/editor/")
        self.step("logged in")

    def accessibility_check(self, label: str) -> None:
        """Run axe-core on the page and note its serious and critical violations."""
        for violation in [*axe_violations(self.page), *duplicate_ids(self.page)]:
            self.violations.append(f"{label} ({self.page.url}): {violation}")


def axe_violations(page: Page, *, impacts: tuple[str, ...] = BLOCKING_IMPACTS) -> list[str]:
    """Run axe-core on the page; return its violations of the given impacts, one line each."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        # Evaluated by the browser's automation channel, not added as an inline
        # <script>: the pages' Content-Security-Policy rightly refuses those.
        page.evaluate(AXE_SCRIPT.read_text(encoding="utf-8") + "\n;void 0")
    # iframes off: the only frame is the editor's sandboxed preview of the
    # mail, where no script (axe's included) may run, so axe would wait for
    # an answer that never comes.
    results = page.evaluate(
        "async () => await axe.run(document, {iframes: false, resultTypes: ['violations']})",
    )
    lines = []
    for violation in results["violations"]:
        if violation["impact"] not in impacts:
            continue
        targets = "; ".join(" ".join(node["target"]) for node in violation["nodes"][:5])
        lines.append(f"[{violation['impact']}] {violation['id']}: {violation['help']} at {targets}")
    return lines


def duplicate_ids(page: Page) -> list[str]:
    """Return a line per id used twice on the page.

    axe-core no longer reports these, yet a label's `for` then names only
    the first element, and the second control is left without a name.
    """
    repeated = page.evaluate(
        """() => {
            const seen = new Map();
            for (const el of document.querySelectorAll("[id]")) seen.set(el.id, (seen.get(el.id) || 0) + 1);
            return [...seen].filter(([, n]) => n > 1).map(([id]) => id);
        }"""
    )
    return [f"[serious] duplicate-id: the id {value!r} is used more than once" for value in repeated]


def outbox_messages(path: Path) -> list[EmailMessage]:
    """Return the messages in the outbox directory, oldest first."""
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in sorted(path.glob("*.eml"))]


def outbox_wait(path: Path, *, to: str, count: int = 1, subject: str = "", timeout: float = 30) -> list[EmailMessage]:
    """Wait until `count` messages to `to` (with `subject` in their subject) are in the outbox; return them."""
    deadline = time.monotonic() + timeout
    while True:
        found = [m for m in outbox_messages(path) if to in str(m["To"]) and subject in str(m["Subject"])]
        if len(found) >= count:
            return found
        if time.monotonic() > deadline:
            seen = [(str(m["To"]), str(m["Subject"])) for m in outbox_messages(path)]
            raise AssertionError(f"{count} message(s) to {to} not in the outbox after {timeout}s; there are {seen}")
        time.sleep(0.2)


def text_of(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def links_in(message: EmailMessage, *, containing: str) -> list[str]:
    """Return the http(s) links in the plain-text part that contain `containing`."""
    return [link for link in re.findall(r"https?://[^\s<>\"')]+", text_of(message)) if containing in link]

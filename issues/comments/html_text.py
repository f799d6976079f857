"""Readable text from an HTML-only reply: block elements become line breaks, lists keep their bullets.

Only the structure is read (with the standard library's HTML parser, which
runs nothing); scripts, styles and the head are left out, entities decoded,
runs of spaces collapsed as a browser would.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_PARAGRAPHS = {"p", "blockquote", "pre", "ul", "ol", "table", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "dl"}
_LINES = {
    "div", "tr", "section", "article", "header", "footer", "main", "aside", "nav", "address",
    "figure", "figcaption", "form", "fieldset", "details", "summary", "dt", "dd", "center", "caption",
}  # fmt: skip
_HIDDEN = {"script", "style", "head", "title", "template", "noscript"}
_CELLS = {"td", "th"}


class _TextParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.pending = 0  # line breaks owed before the next text (blocks next to each other share them)
        self.hidden = 0
        self.pre = 0

    def _block(self, breaks: int) -> None:
        self.pending = max(self.pending, breaks)

    def _flush(self, at_least: int = 0) -> None:
        breaks = max(self.pending, at_least)
        if breaks and self.parts:
            self.parts.append("\n" * breaks)
        self.pending = 0

    def handle_starttag(self, tag, attrs):
        if tag in _HIDDEN:
            self.hidden += 1
        elif tag == "br":
            self._flush()
            self.parts.append("\n")
        elif tag == "li":
            self._flush(at_least=1)
            self.parts.append("- ")
        elif tag in _PARAGRAPHS:
            self._block(2)
            self.pre += tag == "pre"
        elif tag in _LINES:
            self._block(1)
        elif tag in _CELLS:
            self.parts.append(" ")

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag in _HIDDEN:
            self.hidden -= 1

    def handle_endtag(self, tag):
        if tag in _HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in _PARAGRAPHS:
            self._block(2)
            if tag == "pre":
                self.pre = max(0, self.pre - 1)
        elif tag in _LINES or tag == "li":
            self._block(1)

    def handle_data(self, data):
        if self.hidden:
            return
        text = data if self.pre else re.sub(r"[ \t\r\n\f\v]+", " ", data)
        if not text.strip(" "):
            if text and self.parts and not self.pending:
                self.parts.append(" ")
            return
        self._flush()
        self.parts.append(text)


def html_text(html: str) -> str:
    """Return the HTML as plain text, one line per line break or block, paragraphs apart."""
    parser = _TextParser()
    parser.feed(html)
    parser.close()
    text = "".join(parser.parts).replace("\xa0", " ")
    lines = [line.strip(" ") for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()

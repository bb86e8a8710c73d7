"""Open every page of the built book in headless Chromium with the network cut off, and check what a reader
would see: no error output, every image decoded, every formula typeset, every widget rendered, a quiet
console, not one request to another host, at a 1280-px window no code or output block wider than the
column, and no MyST markup left as text (page_layout.py states the policy). A full-page screenshot of
each page goes to _build/screenshots/ for a human to look at.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from book_site import built_page, toc_docnames
from page_layout import expand_collapsed, layout_problems, unrendered_markup

PAGES = toc_docnames()
WIDGET_VIEW = 'script[type="application/vnd.jupyter.widget-view+json"]'
# Chromium asks for /favicon.ico on its own; nothing on the page refers to it.
IGNORED_PATHS = ("/favicon.ico",)


class Visit:
    """What happened while one page loaded: requests blocked, HTTP errors, console errors."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.blocked: list[str] = []
        self.http_errors: list[str] = []
        self.console_errors: list[str] = []

    def route(self, route) -> None:
        url = route.request.url
        if url.startswith(self.base):
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort("blockedbyclient")

    def on_response(self, response) -> None:
        if response.status >= 400 and not urlsplit(response.url).path.endswith(
            IGNORED_PATHS
        ):
            self.http_errors.append(f"{response.status} {response.url}")

    def on_console(self, message) -> None:
        if message.type != "error":
            return
        url = (message.location or {}).get("url", "")
        if url.endswith(IGNORED_PATHS) or "favicon" in message.text:
            return
        self.console_errors.append(f"{message.text} ({url})")

    def on_page_error(self, error) -> None:
        self.console_errors.append(f"uncaught: {error}")


def _wait_for_images(page) -> list[str]:
    """Load every image (lazy ones too) and return the sources of those that did not decode."""
    return page.evaluate(
        """async () => {
            const images = [...document.images];
            images.forEach(img => { img.loading = "eager"; });
            await Promise.all(images.map(img => img.complete ? null :
                new Promise(done => { img.addEventListener("load", done); img.addEventListener("error", done); })));
            return images.filter(img => !(img.naturalWidth > 0)).map(img => img.currentSrc || img.src);
        }"""
    )


@pytest.mark.parametrize("docname", PAGES)
def test_page_renders_offline(docname, browser, book_url, screenshots_dir):
    built_page(docname)
    visit = Visit(book_url)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.route("**/*", visit.route)
    page = context.new_page()
    page.on("response", visit.on_response)
    page.on("console", visit.on_console)
    page.on("pageerror", visit.on_page_error)
    try:
        page.goto(f"{book_url}{docname}.html", wait_until="load", timeout=60_000)

        # Error output: a traceback (as an error output, or printed to stderr) or a docutils system message.
        errors = page.evaluate(
            """() => [...document.querySelectorAll(
                    '.output.traceback, .output.error, .output.stderr, .system-message, .problematic')]
                .filter(e => !e.matches('.output.stderr') || e.innerText.includes('Traceback'))
                .map(e => e.innerText.trim().slice(0, 2000))"""
        )
        assert not errors, (
            f"{docname}: error output on the page:\n" + "\n---\n".join(errors)
        )

        broken = _wait_for_images(page)
        assert not broken, f"{docname}: images that did not load: {broken}"

        # Math: every formula the page has must be typeset by the book's own MathJax, without TeX errors.
        n_math = page.locator(".math").count()
        if n_math:
            page.wait_for_function(
                "() => window.MathJax && MathJax.startup && MathJax.startup.promise",
                timeout=30_000,
            )
            page.evaluate("() => MathJax.startup.promise")
            n_typeset = page.locator("mjx-container").count()
            assert n_typeset >= n_math, (
                f"{docname}: {n_math} formulas, {n_typeset} typeset by MathJax"
            )
            merrors = page.locator("mjx-merror").all_inner_texts()
            assert not merrors, f"{docname}: MathJax could not typeset: {merrors}"

        # Widgets: each widget-view output must become a rendered, visible widget.
        n_views = page.locator(WIDGET_VIEW).count()
        if n_views:
            page.wait_for_function(
                """n => document.querySelectorAll(
                    '.widget-subarea > .jupyter-widgets, .widget-subarea > [class*="widget-"]').length >= n""",
                arg=n_views,
                timeout=30_000,
            )
            sizes = page.evaluate(
                """() => [...document.querySelectorAll('.widget-subarea')]
                    .map(e => e.getBoundingClientRect()).map(r => r.width * r.height)"""
            )
            assert len(sizes) >= n_views and all(size > 0 for size in sizes), (
                f"{docname}: {n_views} widget outputs, rendered areas {sizes}"
            )
            widget_errors = page.locator(
                '[class*="error-widget"], .widget-error'
            ).count()
            assert widget_errors == 0, (
                f"{docname}: {widget_errors} widgets rendered as errors"
            )

        page.wait_for_load_state("networkidle", timeout=30_000)
        page.screenshot(
            path=screenshots_dir / f"{docname.replace('/', '__')}.png",
            full_page=True,
        )

        # After the screenshot (which shows the page as it opens): hidden code opened, then measured.
        expand_collapsed(page)
        too_wide = layout_problems(page)
        raw_markup = unrendered_markup(page)
    finally:
        context.close()

    assert not visit.blocked, (
        f"{docname}: requests to other hosts (blocked): {visit.blocked}"
    )
    assert not visit.http_errors, f"{docname}: failed requests: {visit.http_errors}"
    assert not visit.console_errors, (
        f"{docname}: console errors: {visit.console_errors}"
    )
    assert not raw_markup, f"{docname}: MyST markup shown as text:\n" + "\n".join(
        raw_markup
    )
    assert not too_wide, (
        f"{docname}: blocks wider than the column at 1280 px:\n"
        + "\n".join(too_wide)
    )

"""Check the built documentation in a headless browser (``make docs-check``).

Serves ``docs/_build/html`` on localhost, opens the home page and the other user-guide
pages, the tutorials gallery and every tutorial page in Chromium (through Playwright), and
checks that

- each page loads without console errors or uncaught exceptions;
- each tutorial page shows at least one figure that loaded (an ``<img>`` with a natural
  width above zero), at least one block of printed output, and links to download the
  script and the notebook, which the server delivers;
- no block of code or output is cut off: a ``<pre>`` whose content is wider than the block
  must scroll sideways (``overflow-x: auto`` or ``scroll``), and no ``<pre>`` reaches past
  the right edge of the text column. This is checked in a wide and a narrow window.

It saves a full-page screenshot of each page (wide window) into the folder given as the
argument, ``docs/_build/screenshots`` by default, and exits with status 1 if any check
fails. Requests to other hosts (MathJax from its CDN) are blocked so that the check runs
offline; errors from those requests do not count.

Needs ``playwright`` (the ``docs`` extra) and a Chromium: by default Debian's
``/usr/bin/chromium`` (``apt-get install chromium``), or the one named in ``$CHROMIUM``;
``playwright install chromium`` is not needed. Run ``make docs`` first.

    python docs/check_pages.py [SCREENSHOT_FOLDER]
"""

import argparse
import functools
import http.server
import os
import sys
import threading
from pathlib import Path
from urllib.parse import urlparse

from playwright.sync_api import sync_playwright

DOCS = Path(__file__).resolve().parent
HTML = DOCS / "_build" / "html"
GALLERY = "auto_tutorials"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The pages checked besides the tutorials: the home page and the rest of the user guide.
PAGES = [
    "index.html",
    "getting_started.html",
    "command_line.html",
    "choosing_lag_and_m.html",
    "performance.html",
]
WIDE = {"width": 1440, "height": 900}
NARROW = {"width": 820, "height": 900}

# Every <pre> on the page: is its text cut off, or does it reach past the text column?
PRE_CHECK_JS = """() => {
  const column = document.querySelector("article.bd-article") || document.body;
  const right = column.getBoundingClientRect().right;
  const problems = [];
  let scrolling = 0;
  for (const pre of document.querySelectorAll("pre")) {
    if (pre.offsetParent === null) continue;  // not displayed
    const overflowX = getComputedStyle(pre).overflowX;
    const wider = pre.scrollWidth > pre.clientWidth + 1;
    const text = pre.innerText.split("\\n")[0].slice(0, 60);
    if (wider && !["auto", "scroll"].includes(overflowX)) {
      problems.push(`cut off (overflow-x: ${overflowX}, content ${pre.scrollWidth} px ` +
                    `in ${pre.clientWidth} px): ${text}`);
    }
    if (pre.getBoundingClientRect().right > right + 1) {
      problems.push(`reaches past the text column: ${text}`);
    }
    if (wider) scrolling += 1;
  }
  return {problems, scrolling, count: document.querySelectorAll("pre").length};
}"""

# The tutorial's figures (sphinx-gallery's scraped images) and printed output.
TUTORIAL_JS = """() => {
  const figures = [...document.querySelectorAll("img.sphx-glr-single-img, img.sphx-glr-multi-img")];
  const outputs = [...document.querySelectorAll("div.sphx-glr-script-out pre")];
  const links = [...document.querySelectorAll("a[href]")].map((a) => a.getAttribute("href"));
  return {
    figures: figures.length,
    loaded: figures.filter((img) => img.complete && img.naturalWidth > 0).length,
    outputs: outputs.filter((pre) => pre.innerText.trim().length > 0).length,
    notebooks: links.filter((href) => href.endsWith(".ipynb")),
    scripts: links.filter((href) => href.endsWith(".py")),
  };
}"""


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


def serve(directory):
    """Serve ``directory`` on a free localhost port in a daemon thread; return the server."""
    handler = functools.partial(QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def tutorial_pages():
    """The gallery's pages, one per script in docs/tutorials/; a missing one is a failure."""
    scripts = sorted(p.stem for p in (DOCS / "tutorials").glob("*.py"))
    return [f"{GALLERY}/{name}.html" for name in scripts]


def check_page(page, base, path, screenshots, failures, is_tutorial):
    n_failures = len(failures)
    errors = []
    page.on("pageerror", lambda exc: errors.append(f"uncaught exception: {exc}"))

    def on_console(msg):
        origin = (msg.location or {}).get("url", "")
        if msg.type == "error" and (not origin or origin.startswith(base)):
            errors.append(f"console error: {msg.text}")

    page.on("console", on_console)
    response = page.goto(f"{base}/{path}", wait_until="load")
    if response is None or response.status != 200:
        failures.append(f"{path}: HTTP {None if response is None else response.status}")
        return
    # Bring every image into view once, in case the theme loads them lazily.
    page.evaluate("async () => { for (const img of document.images) img.scrollIntoView(); }")
    page.wait_for_function("[...document.images].every((img) => img.complete)", timeout=10_000)
    page.evaluate("window.scrollTo(0, 0)")

    lines = []
    for viewport in (WIDE, NARROW):
        page.set_viewport_size(viewport)
        pres = page.evaluate(PRE_CHECK_JS)
        failures.extend(f"{path} ({viewport['width']} px): {p}" for p in pres["problems"])
        lines.append(f"{pres['count']} pre, {pres['scrolling']} scroll at {viewport['width']} px")
    page.set_viewport_size(WIDE)

    if is_tutorial:
        found = page.evaluate(TUTORIAL_JS)
        if found["loaded"] < 1:
            failures.append(f"{path}: no figure loaded ({found['figures']} figure <img>)")
        elif found["figures"] != found["loaded"]:
            failures.append(f"{path}: {found['figures'] - found['loaded']} figures did not load")
        if found["outputs"] < 1:
            failures.append(f"{path}: no printed output")
        for kind in ("notebooks", "scripts"):
            if not found[kind]:
                failures.append(f"{path}: no link to download the {kind[:-1]}")
            for href in sorted(set(found[kind])):
                url = f"{base}/{Path(path).parent.as_posix()}/{href}"
                status = page.request.get(url).status
                if status != 200:
                    failures.append(f"{path}: download {href} gives HTTP {status}")
        downloads = sorted({Path(href).name for href in found["scripts"] + found["notebooks"]})
        lines.append(
            f"{found['loaded']}/{found['figures']} figures loaded, {found['outputs']} outputs, "
            f"downloads {', '.join(downloads)}"
        )
    failures.extend(f"{path}: {e}" for e in errors)
    name = path.replace("/", "_").removesuffix(".html") + ".png"
    page.screenshot(path=str(screenshots / name), full_page=True)
    status = "FAIL" if len(failures) > n_failures else "ok"
    print(f"{status:4} {path}: " + "; ".join(lines))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "screenshots",
        nargs="?",
        default=str(HTML.parent / "screenshots"),
        help="folder for the screenshots (default: docs/_build/screenshots)",
    )
    args = parser.parse_args(argv)
    if not (HTML / "index.html").is_file():
        sys.exit(f"{HTML / 'index.html'} is missing: run `make docs` first")
    screenshots = Path(args.screenshots)
    screenshots.mkdir(parents=True, exist_ok=True)

    server = serve(HTML)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    host = urlparse(base).netloc
    blocked = []
    failures = []
    tutorials = tutorial_pages()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"),
                args=CHROMIUM_ARGS,
            )
            context = browser.new_context(viewport=WIDE)

            def route(r):
                if urlparse(r.request.url).netloc == host:
                    r.continue_()
                else:
                    blocked.append(r.request.url)
                    r.abort()

            context.route("**/*", route)
            for path in [*PAGES, f"{GALLERY}/index.html", *tutorials]:
                if not (HTML / path).is_file():
                    failures.append(f"{path}: not built")
                    print(f"FAIL {path}: not built")
                    continue
                page = context.new_page()
                check_page(page, base, path, screenshots, failures, path in tutorials)
                page.close()
            browser.close()
    finally:
        server.shutdown()

    if blocked:
        print(f"blocked {len(set(blocked))} requests to other hosts: {sorted(set(blocked))}")
    print(f"screenshots in {screenshots}")
    if failures:
        print(f"{len(failures)} problems:", *failures, sep="\n  ")
        return 1
    print(f"all {len(PAGES) + 1 + len(tutorials)} pages passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

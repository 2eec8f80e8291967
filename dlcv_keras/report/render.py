"""Templates -> HTML string, HTML string -> PDF bytes. No results reading here.

Like htmlpdf: ``render_html`` takes a template name and a context and returns a
string; ``render_template_string`` does the same for an inline template (for tests);
``write_pdf`` is the only WeasyPrint call. File writing stays in ``build_report``.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Mapping

import jinja2

from dlcv_keras.resources import packaged_dir
from dlcv_keras.results import atomic_write_bytes

__all__ = ["templates_dir", "make_environment", "render_html", "render_template_string",
           "pdf_bytes", "write_pdf"]


def templates_dir() -> Path:
    """``dlcv_keras/report_templates`` when installed, ``<repo>/report_templates`` in a checkout."""
    return packaged_dir("report_templates")


def pct(value: Any) -> str:
    """A fraction in [0, 1] as percent with 2 decimals: 0.9137 -> "91.37"; None -> "—"."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    return f"{100 * value:.2f}"


def make_environment(directory: Path | None = None) -> jinja2.Environment:
    """Autoescape on for every template, ``.jinja2`` included (``autoescape=True``)."""
    loader = jinja2.FileSystemLoader(str(directory or templates_dir()))
    env = jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["pct"] = pct
    return env


def render_html(template_name: str, context: Mapping[str, Any], *, directory: Path | None = None) -> str:
    return make_environment(directory).get_template(template_name).render(**context)


def render_template_string(source: str, context: Mapping[str, Any]) -> str:
    """Render an inline template with the same settings (autoescape, filters); no files read."""
    env = make_environment()
    return env.from_string(source).render(**context)


def enable_weasyprint_logging(level: int = logging.WARNING) -> None:
    """Show WeasyPrint's CSS and layout warnings (htmlpdf's enable_weasyprint_logging)."""
    logger = logging.getLogger("weasyprint")
    logger.setLevel(level)
    if not logger.handlers:
        logger.addHandler(logging.StreamHandler())


def outside(url: str, root: Path) -> bool:
    """Whether a URL a page asks for is anything but a ``data:`` URI or a file inside ``root``."""
    from urllib.parse import unquote, urlparse

    parsed = urlparse(url)
    if parsed.scheme == "data":
        return False
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
        return not Path(unquote(parsed.path)).resolve().is_relative_to(root)
    return True


def confined_fetcher(root: str | Path):
    """A WeasyPrint ``url_fetcher`` that fetches ``data:`` URIs and files inside ``root`` only.

    Our figures are ``data:`` URIs; anything else in a page came from stored text (a run name, a
    note) or a hand-edited template, and must not pull a local file or the network into a PDF.
    A refused URL is logged by WeasyPrint and left out of the page."""
    import weasyprint

    root = Path(root).resolve()

    def refuse(url: str):
        raise ValueError(f"not embedded: {url[:120]!r} is outside the results folder {root}")

    if hasattr(weasyprint, "URLFetcher"):          # WeasyPrint >= 68: a fetcher is a class
        class Confined(weasyprint.URLFetcher):
            def fetch(self, url, headers=None):
                return refuse(url) if outside(url, root) else super().fetch(url, headers)

        return Confined()

    def fetch(url: str, *args, **kwargs):          # older WeasyPrint: a function
        return refuse(url) if outside(url, root) else weasyprint.default_url_fetcher(url, *args, **kwargs)

    return fetch


def pdf_bytes(html: str, base_url: str | Path | None = None, allowed_root: str | Path | None = None) -> bytes:
    """The only WeasyPrint call. Images are ``data:`` URIs; nothing outside ``allowed_root`` (default:
    ``base_url``'s folder) is fetched (``confined_fetcher``)."""
    import weasyprint  # imported here: slow to import and only needed for PDF output

    enable_weasyprint_logging()
    base = str(base_url) if base_url is not None else str(Path.cwd())
    fetcher = confined_fetcher(allowed_root if allowed_root is not None else base)
    return weasyprint.HTML(string=html, base_url=base, url_fetcher=fetcher).write_pdf()


def write_pdf(html: str, path: Path, base_url: str | Path | None = None) -> Path:
    """Render ``html`` to PDF and write it atomically to ``path``."""
    path = Path(path)
    data = pdf_bytes(html, base_url if base_url is not None else path.parent)
    atomic_write_bytes(path, data)
    return path

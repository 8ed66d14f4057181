"""The docs site's results pages, built from the files the boards committed under results/
(never copied by hand, so a rerun board shows up on the next `make docs`).

    python -m recbole_dlrrec.experiments.docs_results --results results --out docs/results/boards

- A folder under results/ with report files directly in it (``leaderboard.md``,
  ``significance.md``, the experiments' tables, ``*.txt`` benchmark logs, ``*.png`` charts)
  becomes ``<out>/<folder>/index.md``, its charts copied beside it. Per-run records
  (``cells/``, ``tuning/``, hidden folders) are not pages.
- Order on a page: ``leaderboard.md`` (its title is the page's), ``significance.md`` unless the
  leaderboard already holds its tables, the other tables by name, the text logs as text blocks;
  a chart follows the table whose name starts with the same word (``ablation.png`` after
  ``ablation.md``, ``swing_hist.png`` after ``swing_audit.md``), the rest close the page.
- A Markdown file directly in results/ (``dlrrec-defaults.md``) becomes ``<out>/<stem>/index.md``.
- ``<out>/index.md`` lists every page.

The output folder is this tool's own: ``<out>/.docs_results.json`` lists what it wrote, a rerun
replaces exactly those files, and a non-empty folder without that list is refused.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from recbole_dlrrec import atomic
from recbole_dlrrec.errors import EXIT_INPUT_ERROR, InputError

MANIFEST = ".docs_results.json"
# Folders of per-run records, not reports: one file per cell or trial.
RECORD_FOLDERS = frozenset({"cells", "tuning"})
REPORT_SUFFIXES = (".md", ".txt", ".png")
LEADERBOARD = "leaderboard.md"
SIGNIFICANCE = "significance.md"


class DocsResultsError(InputError):
    """The results folder is missing or empty, or the output folder is not this tool's."""


@dataclass
class ResultsPage:
    """One page: ``folder`` is relative to results/ ('' for a file directly in it); the file
    names are relative to that folder, in page order."""

    folder: str
    slug: str
    tables: List[str] = field(default_factory=list)
    logs: List[str] = field(default_factory=list)
    charts: List[str] = field(default_factory=list)


def _first_word(name: str) -> str:
    """'swing_audit.md' -> 'swing': the word a table and its charts share."""
    return os.path.splitext(name)[0].split("_")[0].lower()


def _table_order(names: Sequence[str], leaderboard_text: Optional[str]) -> List[str]:
    tables = sorted(n for n in names if n.endswith(".md"))
    first = [n for n in (LEADERBOARD, SIGNIFICANCE) if n in tables]
    if leaderboard_text is not None and SIGNIFICANCE in first and "\n## Significance" in leaderboard_text:
        first.remove(SIGNIFICANCE)  # the leaderboard already holds the significance tables
    rest = [n for n in tables if n not in (LEADERBOARD, SIGNIFICANCE)]
    return first + rest


def find_pages(results_dir: str) -> List[ResultsPage]:
    """Every results page, sorted by slug. Raises DocsResultsError when there is none."""
    if not os.path.isdir(results_dir):
        raise DocsResultsError(f"{results_dir}: no such results folder")
    pages: List[ResultsPage] = []
    for root, dirs, files in os.walk(results_dir):
        dirs[:] = sorted(d for d in dirs if d not in RECORD_FOLDERS and not d.startswith("."))
        folder = os.path.relpath(root, results_dir)
        reports = sorted(f for f in files if f.endswith(REPORT_SUFFIXES) and not f.startswith("."))
        if folder == ".":
            pages += [ResultsPage("", os.path.splitext(f)[0], tables=[f]) for f in reports if f.endswith(".md")]
            continue
        if not reports:
            continue
        leaderboard_text = _read(os.path.join(root, LEADERBOARD)) if LEADERBOARD in reports else None
        pages.append(
            ResultsPage(
                folder.replace(os.sep, "/"),
                folder.replace(os.sep, "/"),
                tables=_table_order(reports, leaderboard_text),
                logs=[f for f in reports if f.endswith(".txt")],
                charts=[f for f in reports if f.endswith(".png")],
            )
        )
    if not pages:
        raise DocsResultsError(f"{results_dir}: no report files (*.md, *.txt, *.png) to make pages from")
    slugs: Dict[str, ResultsPage] = {}
    for page in pages:
        if page.slug in slugs:
            raise DocsResultsError(
                f"{results_dir}: {page.slug}.md and the folder {page.slug}/ would make the same page"
            )
        slugs[page.slug] = page
    return sorted(pages, key=lambda p: p.slug)


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError) as error:
        raise DocsResultsError(f"{path}: cannot be read ({error})") from error


def demote_headings(text: str) -> str:
    """One level down for every ATX heading outside code fences, so a table's own title sits
    under the page title."""
    lines, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        lines.append("#" + line if not fenced and line.startswith("#") else line)
    return "\n".join(lines)


def title_of(text: str, fallback: str) -> str:
    for line in text.splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return fallback


def _fence(text: str) -> str:
    """A code fence longer than any backtick run inside ``text``."""
    longest = max((len(run) for run in text.split("\n") if run and set(run) == {"`"}), default=0)
    return "`" * max(3, longest + 1)


def render_page(results_dir: str, page: ResultsPage) -> str:
    """The page's Markdown (charts referenced by their file names, beside the page)."""
    source = os.path.join(results_dir, page.folder)
    # The leaderboard (or a lone file directly in results/) keeps its title as the page's.
    head = page.tables[0] if page.tables and (page.tables[0] == LEADERBOARD or not page.folder) else None
    parts: List[str] = [] if head else [f"# Results: {page.folder}"]
    shown: set[str] = set()
    for name in page.tables:
        text = _read(os.path.join(source, name))
        parts.append(text.rstrip() if name == head else demote_headings(text).rstrip())
        charts = [c for c in page.charts if c not in shown and _first_word(c) == _first_word(name)]
        parts += [f"![{chart}]({chart})" for chart in charts]
        shown.update(charts)
    for name in page.logs:
        text = _read(os.path.join(source, name)).rstrip()
        fence = _fence(text)
        parts.append(f"## {name}\n\n{fence}text\n{text}\n{fence}")
    left = [c for c in page.charts if c not in shown]
    if left:
        parts.append("## Charts\n\n" + "\n\n".join(f"![{c}]({c})" for c in left))
    where = f"results/{page.folder}/" if page.folder else f"results/{page.tables[0]}"
    parts.append(f"*Generated from `{where}` by `python -m recbole_dlrrec.experiments.docs_results`.*")
    return "\n\n".join(parts) + "\n"


def render_index(results_dir: str, pages: Sequence[ResultsPage]) -> str:
    lines = [
        "# All result files",
        "",
        "Every page below is generated from the files the boards, benchmarks and searches wrote "
        "under `results/` in the repository.",
        "",
        "| Page | Title | Source |",
        "|---|---|---|",
    ]
    for page in pages:
        link = f"{page.slug}/index.md"
        first = page.tables[0] if page.tables else None
        title = title_of(_read(os.path.join(results_dir, page.folder, first)), page.slug) if first else page.slug
        source = f"results/{page.folder}/" if page.folder else f"results/{first}"
        lines.append(f"| [{page.slug}]({link}) | {title.replace('|', '/')} | `{source}` |")
    return "\n".join(lines) + "\n"


def _previous_files(out_dir: str) -> List[str]:
    """What an earlier run wrote; refuses a folder this tool did not make."""
    manifest = os.path.join(out_dir, MANIFEST)
    if os.path.isfile(manifest):
        try:
            with open(manifest, encoding="utf-8") as handle:
                files = json.load(handle)["files"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise DocsResultsError(f"{manifest}: unreadable ({error}); remove {out_dir} by hand") from error
        return [f for f in files if isinstance(f, str) and not os.path.isabs(f) and ".." not in f.split("/")]
    if os.path.exists(out_dir) and (not os.path.isdir(out_dir) or os.listdir(out_dir)):
        raise DocsResultsError(
            f"{out_dir}: exists and was not written by docs_results (no {MANIFEST}); choose another --out or remove it"
        )
    return []


def _remove_stale(out_dir: str, old: Sequence[str], new: Sequence[str]) -> None:
    for rel in sorted(set(old) - set(new)):
        path = os.path.join(out_dir, rel)
        if os.path.isfile(path):
            os.remove(path)
        folder = os.path.dirname(path)
        while os.path.abspath(folder) != os.path.abspath(out_dir) and os.path.isdir(folder) and not os.listdir(folder):
            os.rmdir(folder)
            folder = os.path.dirname(folder)


def build(results_dir: str, out_dir: str) -> List[str]:
    """Write every page, its charts and the index under ``out_dir``; returns the files written
    (relative to ``out_dir``)."""
    old = _previous_files(out_dir)
    pages = find_pages(results_dir)
    outputs: Dict[str, bytes] = {"index.md": render_index(results_dir, pages).encode("utf-8")}
    for page in pages:
        outputs[f"{page.slug}/index.md"] = render_page(results_dir, page).encode("utf-8")
        for chart in page.charts:
            with open(os.path.join(results_dir, page.folder, chart), "rb") as handle:
                outputs[f"{page.slug}/{chart}"] = handle.read()
    _remove_stale(out_dir, old, list(outputs))
    for rel, data in outputs.items():
        atomic.write_bytes(os.path.join(out_dir, rel), data)
    atomic.write_json(os.path.join(out_dir, MANIFEST), {"files": sorted(outputs)}, indent=1)
    return sorted(outputs)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", default="results", help="the results folder (default: results)")
    parser.add_argument(
        "--out",
        default=os.path.join("docs", "results", "boards"),
        help="where the pages go (default: docs/results/boards; this tool's own folder)",
    )
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    try:
        written = build(args.results, args.out)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    pages = sum(1 for f in written if f.endswith(".md"))
    print(f"docs_results: {pages} pages and {len(written) - pages} charts in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

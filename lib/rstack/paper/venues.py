"""Venue templates (`templates/latex/<venue>/`) and `rstack venue fetch` of official style files.

Our templates approximate each venue with stock TeX Live packages; official files are downloaded
on request into a git-ignored folder and are never committed or shipped.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from .. import paths
from ..errors import PaperError

VENUES = ("arxiv", "neurips", "icml", "iclr", "acl")
OFFICIAL_DIRNAME = "official"  # git-ignored: templates/latex/*/official/
_MAX_DOWNLOAD_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True)
class Venue:
    name: str
    title: str
    documentclass: str  # e.g. "[10pt,twocolumn]{article}"
    style: str  # our .sty basename, without .sty
    columns: int  # 1 or 2
    bibliography_style: str
    page_limit: int | None  # main-text pages; None = no limit
    page_limit_note: str
    official_urls: tuple[str, ...]  # a style archive (.zip) or the style files themselves
    homepage: str | None
    directory: Path

    @property
    def style_path(self) -> Path:
        return self.directory / f"{self.style}.sty"

    @property
    def official_dir(self) -> Path:
        return self.directory / OFFICIAL_DIRNAME


def latex_templates_dir() -> Path:
    return paths.templates_dir() / "latex"


def skeleton_path() -> Path:
    return latex_templates_dir() / "paper.tex.in"


def load_venue(name: str) -> Venue:
    """Read `templates/latex/<name>/template.yaml`; raise PaperError naming the file on a problem."""
    if name not in VENUES:
        raise PaperError(f"unknown venue {name!r}", hint="use one of " + ", ".join(VENUES))
    directory = latex_templates_dir() / name
    spec_path = directory / "template.yaml"
    try:
        spec = YAML(typ="safe").load(spec_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PaperError(f"{spec_path}: cannot read the venue template ({exc.strerror})",
                         hint="reinstall RStack (./setup) or restore templates/latex/") from None
    except YAMLError as exc:
        raise PaperError(f"{spec_path}: malformed YAML ({exc})") from None
    try:
        official = spec.get("official") or {}
        limit = spec["page_limit"]
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)
                                  or limit < 1):
            raise PaperError(f"{spec_path}: page_limit must be a positive integer or null")
        venue = Venue(
            name=name, title=str(spec["title"]), documentclass=str(spec["documentclass"]),
            style=str(spec["style"]), columns=int(spec.get("columns", 1)),
            bibliography_style=str(spec["bibliography_style"]),
            page_limit=limit, page_limit_note=str(spec.get("page_limit_note") or ""),
            official_urls=tuple(str(u) for u in (official.get("urls") or
                                                 ([official["url"]] if official.get("url") else []))),
            homepage=official.get("homepage"),
            directory=directory,
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise PaperError(f"{spec_path}: missing or malformed key ({exc})",
                         hint="compare with templates/latex/arxiv/template.yaml") from None
    if not venue.style_path.is_file():
        raise PaperError(f"{venue.style_path}: the venue's style file is missing",
                         hint="restore templates/latex/ from the RStack checkout")
    return venue


@dataclass
class FetchResult:
    venue: str
    urls: list[str]
    directory: Path
    files: list[str]

    def as_json(self) -> dict:
        return {"venue": self.venue, "urls": self.urls, "directory": str(self.directory),
                "files": self.files}


MAX_UNPACKED_BYTES = 100 * 2**20  # official style archives are well under 10 MiB
MAX_ARCHIVE_ENTRIES = 2000


def _zip_members(data: bytes) -> list[tuple[str, bytes]]:
    """(relative path, bytes) of each file in a zip, refusing members that would escape and
    archives that unpack to more than MAX_UNPACKED_BYTES or hold more than MAX_ARCHIVE_ENTRIES
    files (a zip bomb). Sizes are counted as the bytes come out, not as the headers claim."""
    members = []
    too_big = PaperError(f"the archive unpacks to more than {MAX_UNPACKED_BYTES / 2**20:g} MiB; "
                         "nothing was kept", hint="check the URL: a venue's style files are small")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = [member for member in archive.infolist() if not member.is_dir()]
        if len(infos) > MAX_ARCHIVE_ENTRIES:
            raise PaperError(f"the archive holds more than {MAX_ARCHIVE_ENTRIES} files; nothing "
                             "was kept", hint="check the URL: a venue's style archive is small")
        if sum(member.file_size for member in infos) > MAX_UNPACKED_BYTES:
            raise too_big
        left = MAX_UNPACKED_BYTES
        for member in infos:
            parts = PurePosixPath(member.filename).parts
            if member.filename.startswith("/") or ".." in parts:
                raise PaperError(f"the archive holds an unsafe path {member.filename!r}; "
                                 "nothing was kept", hint="check the URL")
            try:
                with archive.open(member) as handle:
                    body = handle.read(left + 1)
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
                raise PaperError(f"the archive is damaged at {member.filename!r} ({exc}); "
                                 "nothing was kept", hint="download it again or check the URL") \
                    from None
            if len(body) > left:
                raise too_big
            left -= len(body)
            members.append(("/".join(parts), body))
    return members


def _download(source: str, venue: Venue, timeout_s: float) -> bytes:
    import requests  # heavy; only this command needs it

    try:
        response = requests.get(source, timeout=timeout_s, stream=True)
        response.raise_for_status()
        data = response.raw.read(_MAX_DOWNLOAD_BYTES + 1, decode_content=True)
    except requests.RequestException as exc:
        raise PaperError(
            f"could not download {source} ({exc.__class__.__name__}: {exc}); nothing was changed",
            hint=(f"this needs network access; offline, keep RStack's approximation "
                  f"(templates/latex/{venue.name}/). For another year's file pass --url URL"
                  + (f"; the venue's page: {venue.homepage}" if venue.homepage else "")),
        ) from None
    if len(data) > _MAX_DOWNLOAD_BYTES:
        raise PaperError(f"{source}: larger than {_MAX_DOWNLOAD_BYTES // 2**20} MiB; refused")
    return data


def fetch_official(name: str, *, url: str | None = None, timeout_s: float = 30.0) -> FetchResult:
    """Download the venue's official style files into templates/latex/<name>/official/.

    Everything is downloaded and checked before anything is written, so a failure leaves no
    half-fetched folder behind.
    """
    venue = load_venue(name)
    sources = [url] if url else list(venue.official_urls)
    if not sources:
        raise PaperError(f"{name}: there is no official style file to fetch "
                         f"({venue.page_limit_note or venue.title})",
                         hint=f"`rstack paper new --venue {name}` uses RStack's own layout")
    downloads = [(source, _download(source, venue, timeout_s)) for source in sources]
    plans: list[tuple[str, bytes]] = []
    for source, data in downloads:
        if zipfile.is_zipfile(io.BytesIO(data)):
            plans += _zip_members(data)
            continue
        filename = PurePosixPath(source.split("?")[0]).name or "download"
        if not filename.endswith((".sty", ".cls", ".bst", ".tex", ".bib")):
            raise PaperError(f"{source}: neither a zip archive nor a .sty/.cls/.bst/.tex file; "
                             "nothing was kept", hint="pass --url with the style archive's address")
        plans.append((filename, data))
    dest = venue.official_dir
    for rel, data in plans:
        target = dest.joinpath(*PurePosixPath(rel).parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return FetchResult(venue=name, urls=sources, directory=dest,
                       files=sorted(rel for rel, _ in plans))

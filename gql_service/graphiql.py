"""GraphiQL without a CDN: its page and its pinned files, served from the package."""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

STATIC_DIR = Path(__file__).resolve().parent / "static" / "graphiql"
PREFIX = "/static/graphiql"

MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    "": "text/plain; charset=utf-8",  # LICENSE
}
# Every path names one version of one package, so a file under it never changes.
CACHE_CONTROL = "public, max-age=31536000, immutable"


def page_html() -> str:
    """The GraphiQL page: strawberry's, with local files and an example for this API."""
    return (STATIC_DIR / "index.html").read_text(encoding="utf-8")


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    gzipped: bytes | None


@dataclass
class GraphiQLFiles:
    """Serves the files beside the page; only files that are there, read once, on first use."""

    directory: Path = STATIC_DIR
    _assets: dict[str, Asset] = field(default_factory=dict)
    _names: frozenset[str] | None = None

    def names(self) -> frozenset[str]:
        if self._names is None:
            self._names = frozenset(
                path.relative_to(self.directory).as_posix()
                for path in self.directory.rglob("*")
                if path.is_file() and path.suffix in MEDIA_TYPES and path.name != "index.html"
            )
        return self._names

    def asset(self, name: str) -> Asset | None:
        if name not in self.names():
            return None  # also every "..", absolute or otherwise odd path
        if name not in self._assets:
            path = self.directory / name
            body = path.read_bytes()
            # Compressed once: graphiql.min.js alone is 3.5 MB and compresses about 4:1.
            gzipped = gzip.compress(body, 6) if path.suffix in {".js", ".css"} else None
            self._assets[name] = Asset(body, MEDIA_TYPES[path.suffix], gzipped)
        return self._assets[name]

    async def serve(self, request: Request) -> Response:
        name = request.path_params["path"]
        # The first read (and compression) of a file runs off the event loop.
        asset = self._assets.get(name) or await run_in_threadpool(self.asset, name)
        if asset is None:
            return PlainTextResponse("Not found.", status_code=404)
        headers = {"cache-control": CACHE_CONTROL, "vary": "accept-encoding"}
        body = asset.body
        if asset.gzipped is not None and "gzip" in request.headers.get("accept-encoding", ""):
            body = asset.gzipped
            headers["content-encoding"] = "gzip"
        return Response(body, media_type=asset.media_type, headers=headers)

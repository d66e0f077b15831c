"""Static files under content-hashed names, cached for good and served compressed (WhiteNoise).

At start-up every file under static/ is copied to instance/static/ as `name.<hash>.ext` (so the
vendored `htmx-2.0.11.min.js` keeps its version: `htmx-2.0.11.min.<hash>.js`), with Brotli and gzip
variants beside it, and `url_for('static', filename=...)` answers with the hashed name. A changed
file gets a new name, so every name can be cached for a year as immutable. Copies are written only
when missing and atomically, so any number of web processes can start at once; older copies stay
servable for pages rendered before a deploy.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import posixpath
import uuid
from pathlib import Path

import brotli
from flask import Flask, send_from_directory
from whitenoise import WhiteNoise

from .security import headers_for_every_response

HASH_LENGTH = 12
# Below this ratio a compressed variant is worth a second file (WhiteNoise's own rule).
WORTH_COMPRESSING = 0.95
# Browsers and bots ask for /favicon.ico whatever a page links; that URL cannot carry a hash.
FAVICON_MAX_AGE_SECONDS = 24 * 3600
ALREADY_COMPRESSED = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".woff", ".woff2", ".ico"}


def hashed_name(relative_path: str, content: bytes) -> str:
    """'css/site.css' -> 'css/site.<12 hex of sha256>.css'."""
    stem, extension = posixpath.splitext(relative_path)
    digest = hashlib.sha256(content).hexdigest()[:HASH_LENGTH]
    return f"{stem}.{digest}{extension}"


def _write_once(path: Path, content: bytes, partial_dir: Path) -> None:
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the served tree, then renamed in: nobody sees half a file, WhiteNoise never lists one.
    partial_dir.mkdir(parents=True, exist_ok=True)
    partial = partial_dir / f"{os.getpid()}-{uuid.uuid4().hex}"
    partial.write_bytes(content)
    os.replace(partial, path)


COMPRESSORS = {
    ".br": brotli.compress,
    ".gz": lambda content: gzip.compress(content, compresslevel=9, mtime=0),  # mtime=0: same bytes every build
}


def _write_compressed_variants(path: Path, content: bytes, partial_dir: Path) -> None:
    for suffix, compress in COMPRESSORS.items():
        variant = path.with_name(path.name + suffix)
        if variant.exists():  # compressing is the slow part of a start-up; do it once per content
            continue
        data = compress(content)
        if len(data) <= len(content) * WORTH_COMPRESSING:
            _write_once(variant, data, partial_dir)


def build(source: Path, target: Path) -> dict[str, str]:
    """Copy every file of `source` into `target` under its hashed name; return original -> hashed."""
    manifest = {}
    partial_dir = target.with_name(target.name + ".partial")
    for path in sorted(source.rglob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        relative = path.relative_to(source).as_posix()
        content = path.read_bytes()
        manifest[relative] = hashed_name(relative, content)
        destination = target / manifest[relative]
        _write_once(destination, content, partial_dir)
        if path.suffix.lower() not in ALREADY_COMPRESSED:
            _write_compressed_variants(destination, content, partial_dir)
    return manifest


def init_app(app: Flask) -> None:
    # Built under the instance folder: the repository's static/ stays as written.
    build_dir = Path(app.instance_path) / "static"
    manifest = build(Path(app.static_folder), build_dir)

    @app.url_defaults
    def _hashed_static_names(endpoint, values):
        if endpoint == "static" and values.get("filename") in manifest:
            values["filename"] = manifest[values["filename"]]

    @app.get("/favicon.ico")
    def favicon():
        return send_from_directory(app.static_folder, "favicon.ico", max_age=FAVICON_MAX_AGE_SECONDS)

    def add_security_headers(headers, _path, _url):
        # WhiteNoise answers before Flask, so the after_request headers would never reach these files.
        for name, value in headers_for_every_response(app.config["SITE_URL"]).items():
            headers[name] = value

    app.wsgi_app = WhiteNoise(
        app.wsgi_app,
        root=build_dir,
        prefix=app.static_url_path,
        allow_all_origins=False,
        immutable_file_test=lambda _path, _url: True,  # every file in the build has its hash in its name
        add_headers_function=add_security_headers,
    )

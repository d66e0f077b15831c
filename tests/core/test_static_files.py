"""What a browser fetches besides the page: hashed, long-cached, compressed static files, the favicon,
and the meta description a search result shows."""

import gzip
import re

import brotli
import pytest
from helpers.booking import book
from helpers.paths import PROJECT_ROOT

from meander_site.core.static_assets import build, hashed_name

STATIC = PROJECT_ROOT / "static"
ASSET_URLS = re.compile(r'(?:href|src)="(/static/[^"]+)"')
HASHED = re.compile(r"\.[0-9a-f]{12}\.[A-Za-z0-9]+$")
IMMUTABLE = "max-age=315360000, public, immutable"


def asset_urls(html: str) -> list[str]:
    return ASSET_URLS.findall(html)


def fetch(client, url: str, accept_encoding: str = ""):
    response = client.get(url, headers={"Accept-Encoding": accept_encoding})
    body = response.get_data()
    response.close()
    return response, body


def test_every_static_file_a_page_links_has_its_content_hash_in_its_name(client):
    urls = asset_urls(client.get("/demo").get_data(as_text=True))

    assert {url.split("/static/", 1)[1].split(".")[0] for url in urls} >= {"css/site", "js/site", "vendor/htmx-2"}
    for url in urls:
        assert HASHED.search(url), f"{url} carries no content hash"
        original = re.sub(r"\.[0-9a-f]{12}(\.[A-Za-z0-9]+)$", r"\1", url.removeprefix("/static/"))
        assert url == "/static/" + hashed_name(original, (STATIC / original).read_bytes())


def test_vendored_libraries_keep_their_version_in_the_hashed_name(app, staff_client):
    urls = asset_urls(staff_client.get("/pipeline").get_data(as_text=True))

    assert any(re.fullmatch(r"/static/vendor/htmx-2\.0\.11\.min\.[0-9a-f]{12}\.js", url) for url in urls), urls
    assert any(re.fullmatch(r"/static/vendor/Sortable-1\.15\.7\.min\.[0-9a-f]{12}\.js", url) for url in urls), urls


def test_a_hashed_file_is_cached_for_good_and_is_the_file_itself(client):
    url = next(url for url in asset_urls(client.get("/demo").get_data(as_text=True)) if "/css/site." in url)

    response, body = fetch(client, url)

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == IMMUTABLE
    assert response.mimetype == "text/css"
    assert "Content-Encoding" not in response.headers  # the client did not ask for compression
    assert body == (STATIC / "css/site.css").read_bytes()
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]


@pytest.mark.parametrize(
    ("accept_encoding", "served", "decode"),
    [("gzip", "gzip", gzip.decompress), ("gzip, deflate, br", "br", brotli.decompress)],
)
def test_a_hashed_file_is_sent_compressed_when_the_client_accepts_it(client, accept_encoding, served, decode):
    url = next(url for url in asset_urls(client.get("/demo").get_data(as_text=True)) if "/vendor/htmx-" in url)
    original = (STATIC / "vendor/htmx-2.0.11.min.js").read_bytes()

    response, body = fetch(client, url, accept_encoding)

    assert response.status_code == 200
    assert response.headers["Content-Encoding"] == served
    assert "Accept-Encoding" in response.headers["Vary"]
    assert response.headers["Cache-Control"] == IMMUTABLE
    assert len(body) < len(original) / 2
    assert decode(body) == original


def test_a_hashed_file_under_https_carries_hsts_like_every_page(make_app):
    client = make_app(SITE_URL="https://www.meander.no", SESSION_COOKIE_SECURE=True).test_client()
    url = next(url for url in asset_urls(client.get("/demo").get_data(as_text=True)) if "/js/site." in url)

    response, _ = fetch(client, url)

    assert response.status_code == 200
    assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")


def test_a_changed_file_gets_a_new_name():
    assert hashed_name("css/site.css", b"body { color: red }") != hashed_name("css/site.css", b"body { color: blue }")
    assert hashed_name("vendor/htmx-2.0.11.min.js", b"x").startswith("vendor/htmx-2.0.11.min.")


def test_a_build_writes_each_file_once_under_its_hash_with_compressed_variants(tmp_path):
    source, target = tmp_path / "static", tmp_path / "build"
    (source / "css").mkdir(parents=True)
    (source / "css/site.css").write_text("body { margin: 0 }\n" * 200)
    (source / "logo.png").write_bytes(b"\x89PNG not worth compressing")

    manifest = build(source, target)
    css = target / manifest["css/site.css"]
    first_write = css.stat().st_mtime_ns
    again = build(source, target)

    assert again == manifest
    assert css.read_bytes() == (source / "css/site.css").read_bytes()
    assert css.stat().st_mtime_ns == first_write
    assert brotli.decompress((target / (manifest["css/site.css"] + ".br")).read_bytes()) == css.read_bytes()
    assert gzip.decompress((target / (manifest["css/site.css"] + ".gz")).read_bytes()) == css.read_bytes()
    assert sorted(path.name for path in target.iterdir() if path.is_file()) == [manifest["logo.png"]]


# --- favicon -----------------------------------------------------------------------------------------


def test_favicon_ico_at_the_root_is_an_icon_cached_for_a_day(client):
    response = client.get("/favicon.ico")

    assert response.status_code == 200
    assert response.mimetype in ("image/vnd.microsoft.icon", "image/x-icon")
    assert response.get_data()[:4] == b"\x00\x00\x01\x00"  # the ICO header
    assert "max-age=86400" in response.headers["Cache-Control"]


@pytest.mark.parametrize("path", ["/demo", "/login"])
def test_pages_link_an_svg_icon_that_is_served(client, path):
    html = client.get(path).get_data(as_text=True)
    icon = re.search(r'<link rel="icon" href="([^"]+)" type="image/svg\+xml">', html)

    assert icon, "no SVG icon linked"
    response, body = fetch(client, icon.group(1))
    assert response.status_code == 200
    assert response.mimetype == "image/svg+xml"
    assert body.startswith(b"<svg")


# --- meta description --------------------------------------------------------------------------------


def description(html: str) -> str | None:
    found = re.findall(r'<meta name="description" content="([^"]*)">', html)
    assert len(found) <= 1, "one description per page"
    return found[0] if found else None


def test_public_pages_have_a_norwegian_meta_description_of_their_own(client):
    form = description(client.get("/demo").get_data(as_text=True))
    login = description(client.get("/login").get_data(as_text=True))
    received = description(client.get("/demo/mottatt").get_data(as_text=True))
    confirmation = description(client.get(book(client).headers["Location"]).get_data(as_text=True))

    assert form and "Bestill en demo av Meander" in form and 50 <= len(form) <= 160
    assert login and "salgsteam" in login
    assert received and "mottatt" in received
    assert confirmation and "mottatt" in confirmation
    assert len({form, login, received}) == 3

"""Where a task's image may come from: the pool's listed files and the Label Studio host only."""

from __future__ import annotations

import io
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from huale.serve.images import (
    ImageFetchError,
    ImageRefused,
    ImageSource,
    LabelStudioHost,
)

PAT = "eyJhbGciOiJIUzI1NiJ9.eyJ0b2tlbl90eXBlIjoicmVmcmVzaCJ9.c2lnbmF0dXJl"


def png_bytes(size=(20, 10)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 200, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


class FakeLabelStudio(BaseHTTPRequestHandler):
    """Serves /data/upload/1/a.png to token "tok", redirects /moved, /huge is too large."""

    hits: list = []
    refreshes: list = []  # access tokens handed out for the personal access token PAT

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path != "/api/token/refresh/" or json.loads(body) != {"refresh": PAT}:
            self.send_response(401)
            self.end_headers()
            return
        token = f"access-{len(type(self).refreshes) + 1}"
        type(self).refreshes.append(token)
        answer = json.dumps({"access": token}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def do_GET(self):  # noqa: N802 - http.server's name
        type(self).hits.append((self.path, self.headers.get("Authorization")))
        # the legacy token, or the newest access token (older ones have "expired")
        valid = {"Token tok"} | ({f"Bearer {type(self).refreshes[-1]}"} if type(self).refreshes else set())
        if self.headers.get("Authorization") not in valid:
            self.send_response(401)
            self.end_headers()
            return
        if self.path.startswith("/data/upload/1/a.png"):
            body = png_bytes()
        elif self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
            self.end_headers()
            return
        elif self.path == "/huge":
            body = b"\x89PNG" + b"0" * 5000
        elif self.path == "/text":
            body = b"<html>not an image</html>"
        else:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_ls():
    FakeLabelStudio.hits = []
    FakeLabelStudio.refreshes = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeLabelStudio)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def pool(tmp_path):
    root = tmp_path / "pool"
    (root / "sub").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(root / "a.png")
    Image.new("RGB", (8, 8)).save(root / "sub" / "b c.png")
    secret = tmp_path / "secret.png"
    Image.new("RGB", (8, 8)).save(secret)
    os.symlink(secret, root / "link.png")  # a symlink in the pool folder, not listed in the pool
    return root, {"a.png": root / "a.png", "sub/b c.png": root / "sub" / "b c.png"}


def source(pool, port=None, tmp=None, **kw) -> ImageSource:
    root, listed = pool
    ls = LabelStudioHost.parse(f"http://127.0.0.1:{port}", "tok") if port else None
    refs = {"/data/local-files/?d=sub/b%20c.png": "sub/b c.png"}
    return ImageSource(listed, references=refs, label_studio=ls, cache_dir=tmp, **kw)


def test_pool_images_by_id_path_and_export_reference(pool):
    root, _ = pool
    images = source(pool)
    assert images.resolve("a.png").pool_id == "a.png"
    assert images.resolve(str(root / "a.png")).path == root / "a.png"
    assert images.resolve(str(root / "sub" / "." / "b c.png")).pool_id == "sub/b c.png"
    assert images.resolve("/data/local-files/?d=sub/b%20c.png").pool_id == "sub/b c.png"
    assert images.resolve("anything", hint_id="a.png").pool_id == "a.png"  # data.huale_id


@pytest.mark.parametrize(
    "reference",
    [
        "/etc/passwd",
        "{root}/../secret.png",
        "{root}/sub/../../secret.png",
        "{root}/link.png",  # in the folder but not a pool image: never opened
        "file:///etc/passwd",
        "data:image/png;base64,AAAA",
        "ftp://127.0.0.1/a.png",
        "relative/a.png",
        "http://example.com/a.png",
        "",
        "   ",
    ],
)
def test_everything_else_is_refused_without_a_label_studio_host(pool, reference):
    root, _ = pool
    with pytest.raises(ImageRefused):
        source(pool).resolve(reference.format(root=root))


def test_non_string_references_are_refused(pool):
    for reference in (None, 3, ["a.png"], {"url": "a.png"}):
        with pytest.raises(ImageRefused):
            source(pool).resolve(reference)


def test_label_studio_images_are_fetched_with_the_token(pool, fake_ls, tmp_path):
    images = source(pool, fake_ls, tmp_path / "cache")
    found = images.resolve(f"http://127.0.0.1:{fake_ls}/data/upload/1/a.png")
    assert found.pool_id is None and Image.open(found.path).size == (20, 10)
    relative = images.resolve("/data/upload/1/a.png?x=1")
    assert Image.open(relative.path).size == (20, 10)
    assert FakeLabelStudio.hits == [
        ("/data/upload/1/a.png", "Token tok"), ("/data/upload/1/a.png?x=1", "Token tok")
    ]
    images.resolve(f"http://127.0.0.1:{fake_ls}/data/upload/1/a.png")  # cached: no new request
    assert len(FakeLabelStudio.hits) == 2


@pytest.mark.parametrize(
    "template",
    [
        "http://127.0.0.2:{port}/data/upload/1/a.png",  # other host
        "http://localhost:{port}/data/upload/1/a.png",  # same machine, other name: still refused
        "http://127.0.0.1:{other}/data/upload/1/a.png",  # other port
        "https://127.0.0.1:{port}/data/upload/1/a.png",  # other scheme
        "http://127.0.0.1:{port}@evil.example/a.png",  # userinfo trick: host is evil.example
        "http://user:tok@127.0.0.1:{port}/data/upload/1/a.png",  # credentials in the URL
        "//evil.example/a.png",  # network-path reference
        "http://169.254.169.254/latest/meta-data/",
    ],
)
def test_other_origins_are_refused_before_any_connection(pool, fake_ls, template):
    url = template.format(port=fake_ls, other=fake_ls + 1)
    with pytest.raises(ImageRefused):
        source(pool, fake_ls).resolve(url)
    assert FakeLabelStudio.hits == []


def test_redirects_are_not_followed(pool, fake_ls):
    with pytest.raises(ImageFetchError, match="302.*not followed"):
        source(pool, fake_ls).resolve("/moved")
    assert [path for path, _ in FakeLabelStudio.hits] == ["/moved"]


def test_size_limit_and_non_images(pool, fake_ls, tmp_path):
    with pytest.raises(ImageFetchError, match="over the limit"):
        source(pool, fake_ls, tmp_path, max_bytes=1000).resolve("/huge")
    with pytest.raises(ImageFetchError, match="not an image"):
        source(pool, fake_ls, tmp_path).resolve("/text")
    assert not any(p.is_file() and p.stat().st_size > 1000 for p in Path(tmp_path).iterdir()
                   if p.is_file() and p.suffix == "")
    with pytest.raises(ImageFetchError, match="404"):
        source(pool, fake_ls, tmp_path).resolve("/data/upload/9/missing.png")


def test_wrong_token_is_a_fetch_error(pool, fake_ls):
    root, listed = pool
    ls = LabelStudioHost.parse(f"http://127.0.0.1:{fake_ls}", "wrong")
    with pytest.raises(ImageFetchError, match="401"):
        ImageSource(listed, label_studio=ls).resolve("/data/upload/1/a.png")


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("http://localhost:8080", "http://localhost:8080"),
        ("HTTP://LocalHost:8080/", "http://localhost:8080"),
        ("https://ls.example.org", "https://ls.example.org:443"),
        ("http://10.0.0.5", "http://10.0.0.5:80"),
    ],
)
def test_label_studio_url_parsing(url, origin):
    assert LabelStudioHost.parse(url).origin == origin


@pytest.mark.parametrize("url", ["localhost:8080", "ftp://x", "http://", "http://u:p@h:1",
                                 "http://h:99999", "http://h:1/?q=1"])
def test_bad_label_studio_urls_are_errors(url):
    with pytest.raises(Exception, match="LABEL_STUDIO_URL"):
        LabelStudioHost.parse(url)


def test_label_studio_host_from_environment():
    assert LabelStudioHost.from_env({}) is None
    host = LabelStudioHost.from_env({"LABEL_STUDIO_URL": "http://127.0.0.1:8080",
                                     "LABEL_STUDIO_API_KEY": "k"})
    assert host.token == "k" and host.port == 8080


def test_a_personal_access_token_is_exchanged_and_renewed(pool, fake_ls, tmp_path):
    root, listed = pool
    ls = LabelStudioHost.parse(f"http://127.0.0.1:{fake_ls}", PAT)
    images = ImageSource(listed, label_studio=ls, cache_dir=tmp_path)
    images.resolve("/data/upload/1/a.png")
    assert FakeLabelStudio.refreshes == ["access-1"]
    assert FakeLabelStudio.hits[-1] == ("/data/upload/1/a.png", "Bearer access-1")
    FakeLabelStudio.refreshes.append("access-2")  # the server moved on: access-1 expired
    images.resolve("/data/upload/1/a.png?again")
    assert [h for _, h in FakeLabelStudio.hits[-2:]] == ["Bearer access-1", "Bearer access-3"]


def test_a_refused_personal_access_token_is_a_fetch_error(pool, fake_ls):
    root, listed = pool
    ls = LabelStudioHost.parse(f"http://127.0.0.1:{fake_ls}", PAT[:-2] + "xx")
    with pytest.raises(ImageFetchError, match="personal access token"):
        ImageSource(listed, label_studio=ls).resolve("/data/upload/1/a.png")

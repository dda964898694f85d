"""crmse_cli.data.download against a local HTTP server: verify, resume, mirrors, bad servers."""

from __future__ import annotations

import hashlib
import http.server
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from crmse_cli.data.download import fetch_file
from crmse_cli.data.sources import RemoteFile
from crmse_cli.errors import DataError, NetworkError

DATA = bytes(range(256)) * 200 + b"tail"  # 51,204 bytes
SHA = hashlib.sha256(DATA).hexdigest()


@dataclass
class Behaviour:
    """What the fake server does; tests change it between calls."""

    files: dict[str, bytes] = field(default_factory=lambda: {"/f.bin": DATA})
    cut_after: int | None = None  # send this many body bytes, then drop the connection ...
    cuts_left: int = 0  # ... for this many responses
    stall_s: float = 0.0  # with a cut: wait this long before dropping (a silent server)
    ignore_range: bool = False
    requests: list[tuple[str, str | None, int]] = field(default_factory=list)  # path, Range, status


def _handler(b: Behaviour) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep pytest output clean
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            rng = self.headers.get("Range")
            body = b.files.get(self.path)
            if body is None:
                b.requests.append((self.path, rng, 404))
                self.send_error(404)
                return
            start = 0
            match = re.fullmatch(r"bytes=(\d+)-", rng or "")
            if match and not b.ignore_range:
                start = int(match.group(1))
                if start >= len(body):
                    b.requests.append((self.path, rng, 416))
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            b.requests.append((self.path, rng, 206 if match and not b.ignore_range else 200))
            rest = body[start:]
            self.send_header("Content-Length", str(len(rest)))
            self.end_headers()
            if b.cuts_left > 0 and b.cut_after is not None:
                b.cuts_left -= 1
                self.wfile.write(rest[: b.cut_after])
                self.wfile.flush()
                time.sleep(b.stall_s)
                self.close_connection = True
                return
            self.wfile.write(rest)

    return Handler


@pytest.fixture
def server() -> Iterator[tuple[str, Behaviour]]:
    behaviour = Behaviour()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(behaviour))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", behaviour
    httpd.shutdown()
    httpd.server_close()


def _refused_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/f.bin"


def _remote(*urls: str, sha256: str = SHA, size: int | None = len(DATA)) -> RemoteFile:
    return RemoteFile(filename="f.bin", urls=tuple(urls), sha256=sha256, size=size)


def test_full_download_is_verified_and_cached(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    base, b = server
    seen: list[tuple[int, int | None]] = []
    path = fetch_file(_remote(base + "/f.bin"), tmp_path / "cache", progress=lambda d, t: seen.append((d, t)))
    assert path == tmp_path / "cache" / "f.bin"
    assert path.read_bytes() == DATA
    assert not (tmp_path / "cache" / "f.bin.part").exists()
    assert b.requests == [("/f.bin", None, 200)]
    assert seen[-1] == (len(DATA), len(DATA))

    assert fetch_file(_remote(base + "/f.bin"), tmp_path / "cache") == path
    assert len(b.requests) == 1  # cached: no second transfer


def test_corrupt_cached_file_is_downloaded_again(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    base, b = server
    (tmp_path / "f.bin").write_bytes(DATA[:-1] + b"X")
    assert fetch_file(_remote(base + "/f.bin"), tmp_path).read_bytes() == DATA
    assert len(b.requests) == 1


def test_interrupted_download_resumes_on_the_next_call(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    base, b = server
    b.cut_after, b.cuts_left = 20_000, 1
    with pytest.raises(NetworkError, match="rerun to resume"):
        fetch_file(_remote(base + "/f.bin"), tmp_path, attempts=1)
    part = tmp_path / "f.bin.part"
    assert part.read_bytes() == DATA[:20_000]
    assert not (tmp_path / "f.bin").exists()

    assert fetch_file(_remote(base + "/f.bin"), tmp_path).read_bytes() == DATA
    assert b.requests[-1] == ("/f.bin", "bytes=20000-", 206)
    assert not part.exists()


def test_interruptions_resume_within_one_call(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    base, b = server
    b.cut_after, b.cuts_left = 10_000, 2
    assert fetch_file(_remote(base + "/f.bin"), tmp_path, attempts=3).read_bytes() == DATA
    assert [r[1] for r in b.requests] == [None, "bytes=10000-", "bytes=20000-"]


def test_silent_server_times_out_and_keeps_the_part(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    base, b = server
    b.cut_after, b.cuts_left, b.stall_s = 5_000, 1, 2.0
    with pytest.raises(NetworkError, match="interrupted"):
        fetch_file(_remote(base + "/f.bin"), tmp_path, attempts=1, timeout_s=0.3)
    assert (tmp_path / "f.bin.part").stat().st_size == 5_000


def test_server_ignoring_range_restarts_cleanly(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    base, b = server
    b.ignore_range = True
    (tmp_path / "f.bin.part").write_bytes(b"garbage" * 1000)  # would corrupt the file if appended to
    assert fetch_file(_remote(base + "/f.bin"), tmp_path).read_bytes() == DATA
    assert b.requests == [("/f.bin", "bytes=7000-", 200)]


def test_wrong_checksum_is_refused_and_nothing_kept(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    base, _ = server
    with pytest.raises(DataError, match="sha256 .* does not match .*corrupt") as info:
        fetch_file(_remote(base + "/f.bin", sha256="0" * 64), tmp_path)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "f.bin").exists()
    assert not (tmp_path / "f.bin.part").exists()


def test_missing_checksum_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no pinned sha256"):
        fetch_file(_remote("http://127.0.0.1:9/f.bin", sha256=""), tmp_path)


@pytest.mark.parametrize("first", ["404", "refused"])
def test_failing_first_url_falls_back_to_the_mirror(
    server: tuple[str, Behaviour], tmp_path: Path, first: str
) -> None:
    base, b = server
    primary = base + "/missing.bin" if first == "404" else _refused_url()
    assert fetch_file(_remote(primary, base + "/f.bin"), tmp_path).read_bytes() == DATA
    assert b.requests[-1] == ("/f.bin", None, 200)
    assert [r[0] for r in b.requests] == (["/missing.bin", "/f.bin"] if first == "404" else ["/f.bin"])


def test_all_urls_failing_names_each(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    base, _ = server
    with pytest.raises(NetworkError) as info:
        fetch_file(_remote(base + "/missing.bin", _refused_url()), tmp_path)
    msg = str(info.value)
    assert "HTTP 404" in msg and "refused" in msg.lower() and "--from PATH" in msg and "\n" not in msg
    assert not (tmp_path / "f.bin").exists()


def test_file_longer_than_pinned_size_is_removed(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    base, _ = server
    with pytest.raises(DataError, match=f"got {len(DATA)} bytes, expected {len(DATA) - 4}"):
        fetch_file(_remote(base + "/f.bin", size=len(DATA) - 4), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_file_shorter_than_pinned_size_is_not_used(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    base, _ = server
    with pytest.raises(NetworkError, match=f"shorter than the pinned {len(DATA) + 4} bytes"):
        fetch_file(_remote(base + "/f.bin", size=len(DATA) + 4), tmp_path)
    assert not (tmp_path / "f.bin").exists()
    # nothing is kept that a rerun would try to resume forever (the server answers 416 to it)
    assert not (tmp_path / "f.bin.part").exists()


def test_complete_part_from_an_earlier_run_needs_no_transfer(
    server: tuple[str, Behaviour], tmp_path: Path
) -> None:
    base, b = server
    (tmp_path / "f.bin.part").write_bytes(DATA)
    assert fetch_file(_remote(base + "/f.bin"), tmp_path).read_bytes() == DATA
    assert b.requests == []


def test_unknown_size_still_resumes_and_verifies(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    base, b = server
    b.cut_after, b.cuts_left = 30_000, 1
    assert fetch_file(_remote(base + "/f.bin", size=None), tmp_path, attempts=2).read_bytes() == DATA
    assert b.requests[-1] == ("/f.bin", "bytes=30000-", 206)


def test_corrupt_copy_at_the_first_url_falls_back_to_the_mirror(
    server: tuple[str, Behaviour], tmp_path: Path
) -> None:
    base, b = server
    b.files["/bad.bin"] = bytes(reversed(DATA))  # same size, wrong checksum
    assert fetch_file(_remote(base + "/bad.bin", base + "/f.bin"), tmp_path).read_bytes() == DATA
    assert [r[0] for r in b.requests] == ["/bad.bin", "/f.bin"]

"""`dealreg admin` pointed at the wrong thing (a login page, a proxy, a typo'd token) says
so in one line and exits 1: never a traceback. The servers here are real HTTP servers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dealreg.cli import app


class _Html(BaseHTTPRequestHandler):
    """What a wrong --url often is: a web page that answers 200 to everything."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(b"<html><body>Sign in</body></html>")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def html_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Html)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("command", [["partners", "list"], ["policy", "show"],
                                     ["keys", "list"]])
def test_admin_against_a_server_that_is_not_dealreg_says_so(
        html_url: str, command: list[str]) -> None:
    result = CliRunner().invoke(app, ["admin", "--url", html_url, "--token", "t", *command])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    assert "not JSON" in result.output and html_url in result.output, result.output
    assert "Traceback" not in result.output


def test_a_token_that_cannot_be_a_header_is_refused_before_any_request(
        html_url: str) -> None:
    result = CliRunner().invoke(app, ["admin", "--url", html_url, "--token", "tökén",
                                      "partners", "list"])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "token" in result.output and "tökén" not in result.output, result.output


@pytest.mark.parametrize("content", [None, "{not json", "[1, 2]"])
@pytest.mark.parametrize("command", [["partners", "put", "p-1"], ["owners", "put", "cm-1"]])
def test_a_bad_body_file_is_named_before_the_server_is_asked(
        tmp_path: Path, content: str | None, command: list[str]) -> None:
    """`put --file` read the file only after asking the server for the current object: a
    missing or malformed file was reported as "cannot reach dealreg" when the server was
    down, or after a request when it was up. The file is checked first (exit 2)."""
    file = tmp_path / "body.json"
    if content is not None:
        file.write_text(content)
    result = CliRunner().invoke(app, ["admin", "--url", "http://127.0.0.1:1", "--token", "t",
                                      *command, "--file", str(file)])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "body.json" in result.output, result.output
    assert "cannot reach" not in result.output, result.output

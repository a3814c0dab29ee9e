"""A git smart-HTTP server on loopback: `git http-backend` behind a tiny CGI bridge."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from tests.support.servers import serving


class GitServer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def create_repo(self, name: str, files: dict[str, str], branch: str = "main") -> str:
        """A bare repository with one commit holding `files`; returns its clone URL."""
        work = self.root / f"{name}-work"
        bare = self.root / f"{name}.git"
        work.mkdir(parents=True)
        for path, content in files.items():
            (work / path).parent.mkdir(parents=True, exist_ok=True)
            (work / path).write_text(content)
        env = {
            **os.environ,
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@example.com",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@example.com",
        }
        for argv in (
            ["git", "init", "-q", "-b", branch],
            ["git", "add", "-A"],
            ["git", "commit", "-q", "-m", "initial"],
        ):
            subprocess.run(argv, cwd=work, env=env, check=True)
        subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
        subprocess.run(["git", "config", "http.receivepack", "true"], cwd=bare, check=True)
        return f"{self.base_url}/{name}.git"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        root = self.root

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _cgi(self) -> None:
                url = urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                env = {
                    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                    "GIT_PROJECT_ROOT": str(root),
                    "GIT_HTTP_EXPORT_ALL": "1",
                    "REQUEST_METHOD": self.command,
                    "PATH_INFO": url.path,
                    "QUERY_STRING": url.query,
                    "CONTENT_TYPE": self.headers.get("content-type", ""),
                    "CONTENT_LENGTH": str(len(body)),
                    "REMOTE_ADDR": "127.0.0.1",
                    "GIT_HTTP_MAX_REQUEST_BUFFER": "100M",
                }
                if self.headers.get("git-protocol"):
                    env["GIT_PROTOCOL"] = self.headers["git-protocol"]
                result = subprocess.run(
                    ["git", "http-backend"], input=body, env=env, capture_output=True, check=False
                )
                head, _, payload = result.stdout.partition(b"\r\n\r\n")
                status = 200
                headers = []
                for line in head.decode(errors="replace").split("\r\n"):
                    name, _, value = line.partition(":")
                    if name.lower() == "status":
                        status = int(value.strip().split()[0])
                    elif name:
                        headers.append((name, value.strip()))
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = _cgi
            do_POST = _cgi

        return Handler


@contextmanager
def git_server(root: Path) -> Iterator[GitServer]:
    server = GitServer(root)
    with serving(server._server):
        yield server

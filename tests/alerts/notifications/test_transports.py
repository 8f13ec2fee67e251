"""http_post over TLS, against a real HTTPS server on 127.0.0.1: the certificate is checked against the URL's host
name though the request goes to the address the URL check resolved; the TLS context every send shares."""

from __future__ import annotations

import ssl
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from apps.alerts.notifications import transports
from apps.alerts.notifications.transports import TransportError, http_post


def self_signed(tmp_path, name: str):
    """A certificate for `name`, signed by its own key (its own authority), and the key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@pytest.fixture
def https_receiver(tmp_path, settings):
    """An HTTPS server on a free port of 127.0.0.1 with a certificate for "localhost"; records (Host, body)."""
    settings.NOTIFICATIONS_ALLOW_LOOPBACK = True
    cert_path, key_path = self_signed(tmp_path, "localhost")
    received: list[tuple[str, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            received.append((self.headers["Host"], self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            """No access log on the test's output."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    server.cert_path, server.received = cert_path, received
    yield server
    server.shutdown()
    server.server_close()


def trusting(monkeypatch, cert_path) -> None:
    """The process's TLS context trusts `cert_path`, as if its authority were in certifi's bundle."""
    context = ssl.create_default_context(cafile=cert_path)
    monkeypatch.setattr(transports, "_tls_context", lambda: context)


def test_a_certificate_no_authority_vouches_for_is_refused(https_receiver):
    port = https_receiver.server_address[1]
    with pytest.raises(TransportError) as refused:
        http_post(f"https://localhost:{port}/hook", body=b"{}", headers={})
    assert "CERTIFICATE_VERIFY_FAILED" in str(refused.value) and refused.value.retryable
    assert https_receiver.received == []


def test_a_trusted_certificate_is_checked_against_the_urls_host_while_the_resolved_address_is_used(
    https_receiver, monkeypatch
):
    port = https_receiver.server_address[1]
    trusting(monkeypatch, https_receiver.cert_path)
    for n in range(3):
        response = http_post(f"https://localhost:{port}/hook", body=b'{"n": %d}' % n, headers={})
        assert response.status_code == 200
    assert https_receiver.received == [(f"localhost:{port}", b'{"n": %d}' % n) for n in range(3)]

    # The same server by its address: the certificate names "localhost", not 127.0.0.1.
    with pytest.raises(TransportError) as refused:
        http_post(f"https://127.0.0.1:{port}/hook", body=b"{}", headers={})
    assert "CERTIFICATE_VERIFY_FAILED" in str(refused.value)
    assert len(https_receiver.received) == 3


def test_the_shared_context_verifies_with_certifis_bundle_and_not_the_environment(monkeypatch, tmp_path):
    transports._tls_context.cache_clear()
    cert_path, _ = self_signed(tmp_path, "localhost")
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_path))  # not followed, as the proxy variables are not
    try:
        context = transports._tls_context()
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
        authorities = {dict(item[0] for item in ca["subject"]).get("commonName") for ca in context.get_ca_certs()}
        assert "localhost" not in authorities and len(authorities) > 50
        assert transports._tls_context() is context
    finally:
        transports._tls_context.cache_clear()

"""The offline probe in dlcv_keras.data.tfds_source: bounded by its timeout, DNS included."""

from __future__ import annotations

import socket
import time

import pytest

from dlcv_keras.data import tfds_source


def test_slow_dns_counts_as_offline_within_the_timeout(monkeypatch):
    # A resolver that hangs (no network, unreachable DNS server) blocks getaddrinfo far
    # past create_connection's timeout; the probe must give up at its own deadline.
    def hanging_getaddrinfo(*args, **kwargs):
        time.sleep(5.0)
        raise socket.gaierror("too late")

    monkeypatch.setattr(socket, "getaddrinfo", hanging_getaddrinfo)
    start = time.monotonic()
    assert tfds_source.is_online(("example.invalid", 443), timeout=0.5) is False
    assert time.monotonic() - start < 1.5


def test_failed_dns_counts_as_offline(monkeypatch):
    def failing_getaddrinfo(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", failing_getaddrinfo)
    assert tfds_source.is_online(("example.invalid", 443), timeout=0.5) is False


def test_listening_host_counts_as_online():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        assert tfds_source.is_online(("127.0.0.1", port), timeout=2.0) is True


def test_refused_connection_counts_as_offline():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
    # The port was just freed; nothing listens on it now.
    start = time.monotonic()
    assert tfds_source.is_online(("127.0.0.1", port), timeout=2.0) is False
    assert time.monotonic() - start < 2.5


@pytest.mark.parametrize("timeout", [0.3, 1.0])
def test_slow_dns_then_connect_shares_one_deadline(monkeypatch, timeout):
    # The look-up answers just inside the timeout; the connection only gets what is left,
    # so a connect that would hang cannot stretch the whole probe past the deadline.
    real_getaddrinfo = socket.getaddrinfo

    def slow_getaddrinfo(*args, **kwargs):
        time.sleep(timeout * 0.6)
        # 10.255.255.1 is non-routable: a connect to it hangs until its timeout.
        return real_getaddrinfo("10.255.255.1", 443, 0, socket.SOCK_STREAM)

    monkeypatch.setattr(socket, "getaddrinfo", slow_getaddrinfo)
    start = time.monotonic()
    tfds_source.is_online(("example.invalid", 443), timeout=timeout)
    assert time.monotonic() - start < timeout + 0.5

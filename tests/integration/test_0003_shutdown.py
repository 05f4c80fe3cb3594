"""Graceful shutdown on SIGTERM / SIGINT with idle client connections open."""

import signal
import subprocess
import time

import pytest

import kafka_wire as kw
from spool_clients import confluent_admin


@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGINT], ids=['SIGTERM', 'SIGINT'])
def test_shutdown_with_idle_connections(broker, sig):
    socks = []
    admin = None
    try:
        # An idle socket that never sent anything.
        socks.append(kw.connect(broker.port))
        # One that completed an exchange and now sits idle.
        s = kw.connect(broker.port)
        resp = kw.parse_api_versions_response(
            kw.send_recv(s, kw.api_versions_request(3, 1)), 3)
        assert resp['error_code'] == 0
        socks.append(s)
        # One with half a request pending in the broker's buffer.
        s = kw.connect(broker.port)
        s.sendall(kw.metadata_request(1, 2)[:7])
        socks.append(s)

        admin = confluent_admin(broker.bootstrap)
        md = admin.list_topics(timeout=10)
        assert sorted(md.brokers) == [1]

        t0 = time.monotonic()
        try:
            rc = broker.stop(sig, timeout=2)
        except subprocess.TimeoutExpired:
            pytest.fail('spoold did not exit within 2 s of %s\n%s' % (
                sig.name, broker.log_text()))
        elapsed = time.monotonic() - t0
        assert rc == 0, broker.log_text()
        assert elapsed < 2.0

        log = broker.log_text()
        assert 'shutdown complete' in log, log
        assert 'received %s' % sig.name in log, log

        for i, s in enumerate(socks):
            assert kw.wait_closed(s, timeout=2), 'socket %d saw no EOF' % i
    finally:
        for s in socks:
            s.close()
        del admin


def test_shutdown_fresh_broker_then_port_free(start_broker):
    b = start_broker()
    assert b.stop(signal.SIGTERM, timeout=2) == 0
    assert 'shutdown complete' in b.log_text()
    # the listening socket is gone
    with pytest.raises(OSError):
        kw.connect(b.port, timeout=1).close()

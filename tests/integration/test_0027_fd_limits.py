"""File descriptors: segment files go through a bounded cache, so a broker
under a low RLIMIT_NOFILE serves 1,000 partitions and hundreds of segments,
restarts on them, and a topic whose logs cannot all be created is not
created at all (no ghost partitions)."""
import os
import resource
import signal
import subprocess

import log_segments
from client_helpers import consume_assigned, create_topic, produce, producer
from conftest import SPOOLD, Broker, _wait_ready, free_port


def _launch(tmp_path, data_dir, nofile, name, **over):
    """spoold with soft and hard RLIMIT_NOFILE = nofile."""
    port = free_port()
    args = [SPOOLD, '--override', 'listeners=PLAINTEXT://127.0.0.1:%d' % port,
            '--override', 'log.dirs=%s' % data_dir]
    for k, v in over.items():
        args += ['--override', '%s=%s' % (k, v)]
    log_path = tmp_path / ('%s.log' % name)

    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    with open(log_path, 'wb') as errf:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=errf, stderr=errf,
                                preexec_fn=limit)
    b = Broker(proc, port, data_dir, log_path, args)
    assert _wait_ready(proc, port, 20), b.log_text()
    return b


def _open_fds(pid):
    return len(os.listdir('/proc/%d/fd' % pid))


def test_thousand_partitions_under_a_low_fd_limit(tmp_path):
    data = tmp_path / 'data'
    data.mkdir()
    b = _launch(tmp_path, data, 512, 'first')
    try:
        create_topic(b.bootstrap, 'wide', 1000)
        p = producer(b.bootstrap, **{'linger.ms': 20})
        dr = produce(p, 'wide', [{'value': b'v%d' % i, 'partition': i} for i in range(1000)])
        assert all(d.error is None for d in dr), [d for d in dr if d.error][:3]
        assert _open_fds(b.pid) < 512
        msgs = consume_assigned(b.bootstrap, 'wide', list(range(0, 1000, 97)))
        assert sorted(m.value() for m in msgs) == sorted(b'v%d' % i for i in range(0, 1000, 97))
        assert b.stop() == 0
        # and it starts again on them, still under the limit
        b = _launch(tmp_path, data, 512, 'second')
        assert 'Too many open files' not in b.log_text()
        msgs = consume_assigned(b.bootstrap, 'wide', [0, 500, 999])
        assert sorted(m.value() for m in msgs) == [b'v0', b'v500', b'v999']
        b.stop(signal.SIGKILL)                      # and after a crash too
        b = _launch(tmp_path, data, 512, 'third')
        msgs = consume_assigned(b.bootstrap, 'wide', [1, 998])
        assert sorted(m.value() for m in msgs) == [b'v1', b'v998']
    finally:
        b.kill()


def test_many_tiny_segments_under_a_low_fd_limit(tmp_path):
    data = tmp_path / 'data'
    data.mkdir()
    b = _launch(tmp_path, data, 128, 'tiny')
    try:
        create_topic(b.bootstrap, 'tiny', 1, {'segment.bytes': '14'})
        p = producer(b.bootstrap, **{'linger.ms': 0})
        n = 330
        for i in range(n):
            dr = produce(p, 'tiny', [{'value': b'r%03d' % i}])
            assert dr[0].error is None and dr[0].offset == i, dr
        assert len(log_segments.segment_files(data, 'tiny', 0)) >= n
        assert _open_fds(b.pid) < 128
        msgs = consume_assigned(b.bootstrap, 'tiny', [0])
        assert [m.value() for m in msgs] == [b'r%03d' % i for i in range(n)]
        assert b.stop() == 0
        b = _launch(tmp_path, data, 128, 'tiny2')
        msgs = consume_assigned(b.bootstrap, 'tiny', [0], start=300)
        assert [m.value() for m in msgs] == [b'r%03d' % i for i in range(300, n)]
    finally:
        b.kill()

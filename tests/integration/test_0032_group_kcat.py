"""kcat -G: two balanced consumers split a topic and read every record once."""

import re
import signal
import subprocess
import threading
import time

from group_helpers import create_topic, produce
from spool_clients import KCAT


class Kcat:
    def __init__(self, bootstrap, group, topic, name):
        self.name = name
        self.proc = subprocess.Popen(
            ['timeout', '90', KCAT, '-b', bootstrap, '-G', group, '-u',
             '-X', 'client.id=%s' % name,
             '-X', 'auto.offset.reset=earliest',
             '-X', 'heartbeat.interval.ms=500',
             '-f', 'REC %p %o %s\n', topic],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lock = threading.Lock()
        self.records = []
        self.stderr = []
        self.threads = [threading.Thread(target=self._out, daemon=True),
                        threading.Thread(target=self._err, daemon=True)]
        for t in self.threads:
            t.start()

    def _out(self):
        for line in self.proc.stdout:
            parts = line.decode().rstrip('\n').split(' ', 3)
            if parts[0] == 'REC':
                with self.lock:
                    self.records.append((int(parts[1]), int(parts[2]), parts[3]))

    def _err(self):
        for line in self.proc.stderr:
            with self.lock:
                self.stderr.append(line.decode(errors='replace'))

    def count(self):
        with self.lock:
            return len(self.records)

    def err_text(self):
        with self.lock:
            return ''.join(self.stderr)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)     # timeout passes it on to kcat
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        for t in self.threads:
            t.join(timeout=5)


def test_two_kcat_balanced_consumers_read_each_record_once(start_broker):
    # a short initial delay so that both kcats land in the first generation
    broker = start_broker({'group.initial.rebalance.delay.ms': 1500})
    topic, group = 'grp-kcat', 'g-kcat'
    create_topic(broker.bootstrap, topic, 4)
    first = produce(broker.bootstrap, topic, [b'kc-%05d' % i for i in range(1000)],
                    partition_of=lambda i: i % 4)
    a = Kcat(broker.bootstrap, group, topic, 'kcat-a')
    b = Kcat(broker.bootstrap, group, topic, 'kcat-b')
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not re.search(
                r'group %s: generation \d+ with 2 members' % group, broker.log_text()):
            time.sleep(0.1)
        assert re.search(r'group %s: generation \d+ with 2 members' % group,
                         broker.log_text()), broker.log_text()[-3000:]
        # more records while both are consuming
        second = produce(broker.bootstrap, topic,
                         [b'kc-%05d' % i for i in range(1000, 2000)],
                         partition_of=lambda i: i % 4)
        produced = first + second
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and a.count() + b.count() < len(produced):
            time.sleep(0.1)
        time.sleep(1.0)   # anything extra (a duplicate) would show up now
    finally:
        a.stop()
        b.stop()

    recs_a, recs_b = a.records, b.records
    diag = 'a: %d records, stderr %s\nb: %d records, stderr %s' % (
        len(recs_a), a.err_text()[-1500:], len(recs_b), b.err_text()[-1500:])
    both = recs_a + recs_b
    positions = [(p, o) for p, o, _ in both]
    assert len(positions) == len(set(positions)), 'duplicates\n' + diag
    expected = {(p, o): v.decode() for p, o, v in produced}
    assert {(p, o): v for p, o, v in both} == expected, diag
    parts_a = {p for p, _, _ in recs_a}
    parts_b = {p for p, _, _ in recs_b}
    assert parts_a and parts_b, diag
    assert not parts_a & parts_b, diag
    assert parts_a | parts_b == {0, 1, 2, 3}
    # each read its partitions from the beginning, in order
    for recs in (recs_a, recs_b):
        for p in {q for q, _, _ in recs}:
            offs = [o for q, o, _ in recs if q == p]
            assert offs == list(range(500)), (p, offs[:5], len(offs))

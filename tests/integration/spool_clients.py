"""Thin wrappers around the third-party clients used by the integration tests."""

import json
import os
import subprocess

KCAT = os.environ.get('KCAT', '/usr/bin/kcat')


class KcatResult:
    def __init__(self, proc):
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.json = None
        if proc.returncode == 0:
            try:
                self.json = json.loads(proc.stdout)
            except ValueError:
                self.json = None

    def brokers(self):
        """[(id, host, port)] from `kcat -L -J` output."""
        out = []
        for b in (self.json or {}).get('brokers', []):
            host, _, port = b['name'].rpartition(':')
            out.append((b['id'], host, int(port)))
        return out

    def __repr__(self):
        return 'KcatResult(rc=%r, stdout=%r, stderr=%r)' % (
            self.returncode, self.stdout[-2000:], self.stderr[-2000:])


def kcat_list(bootstrap, metadata_timeout=5, timeout=20, extra=()):
    """Run `kcat -L -J` against bootstrap and return a KcatResult."""
    args = [KCAT, '-L', '-J', '-b', bootstrap, '-m', str(metadata_timeout)]
    args += list(extra)
    proc = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True,
                          timeout=timeout)
    return KcatResult(proc)


def confluent_admin(bootstrap, **conf):
    from confluent_kafka.admin import AdminClient
    c = {'bootstrap.servers': bootstrap}
    c.update(conf)
    return AdminClient(c)


def confluent_metadata(bootstrap, topic=None, timeout=10, **conf):
    admin = confluent_admin(bootstrap, **conf)
    try:
        if topic is None:
            return admin.list_topics(timeout=timeout)
        return admin.list_topics(topic=topic, timeout=timeout)
    finally:
        del admin

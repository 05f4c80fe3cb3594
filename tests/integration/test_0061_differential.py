"""Differential protocol tests: the same requests to Apache Kafka 4.3 (the
session fixture `kafka`) and to Spool, both answers decoded with
kafka_schema and compared field by field (kafka_diff.py).  Every
difference is reported with its API, version and field path; one that
docs/DIFFERENCES.md does not list (kafka_diff.KNOWN) fails the test.

Corpus: diff_corpus.py (every API and version Spool serves, from the
schemas, with the error paths) and kafka_record.py (sessions of kcat,
confluent-kafka (plain and idempotent) and kafka-python recorded through
a proxy in front of Kafka, then replayed to both).

`make test` runs the short form: the error paths at a few versions each
and one session per client.  `make difftest` runs the whole corpus
(SPOOL_DIFF_FULL=1) and writes a report of every difference, known ones
included, to $SPOOL_DIFF_REPORT.  With $SPOOL_DIFF_RECORDINGS set, each
recorded session is also kept there (kafka_record.write_recording).
"""
import os
import time
from pathlib import Path

import diff_corpus
import kafka_diff
import kafka_record
import pytest
from conftest import _launch

FULL = os.environ.get('SPOOL_DIFF_FULL') == '1'
REPORT = os.environ.get('SPOOL_DIFF_REPORT')

# Spool started with the settings kafka_ref gives Kafka (as static configs)
SPOOL_LIKE_KAFKA = {'node.id': 1, 'num.partitions': 1, 'offsets.topic.num.partitions': 50,
                    'group.initial.rebalance.delay.ms': 0}

SCENARIOS = diff_corpus.scenarios(FULL)
SESSIONS = [s for s in kafka_record.SESSIONS if FULL or s.short]
_REPORT_LINES = []


@pytest.fixture(scope='module')
def spool(tmp_path_factory):
    b = _launch(tmp_path_factory.mktemp('spool-diff'), 0, dict(SPOOL_LIKE_KAFKA), None)
    yield b
    b.kill()


@pytest.fixture(scope='module')
def runner(kafka, spool):
    r = kafka_diff.Runner(kafka.port, spool.port)
    r.warm_up()
    yield r
    if REPORT:
        Path(REPORT).write_text(_summary(r) + '\n\n' + '\n'.join(_REPORT_LINES) + '\n')


def _summary(r):
    served = {(a, v) for a, (lo, hi) in diff_corpus.SPOOL.items() for v in range(lo, hi + 1)}
    seen = r.versions_seen & served
    lines = ['differential tests: %d requests, %d API versions of the %d Spool serves, '
             '%d differences (%d known, %d unknown)'
             % (r.steps_run, len(seen), len(served), len(r.diffs), len(r.diffs) - len(r.unknown()),
                len(r.unknown()))]
    for a in sorted(diff_corpus.SPOOL):
        vs = sorted(v for aa, v in seen if aa == a)
        lines.append('  %-26s %s' % (kafka_diff.S.api_name(a), ' '.join(map(str, vs))))
    return '\n'.join(lines)


def _check(r, name, diffs, seconds):
    unknown = [d for d in diffs if d.known is None]
    _REPORT_LINES.append('== %s: %d differences (%d unknown), %.1f s' % (name, len(diffs), len(unknown), seconds))
    _REPORT_LINES.extend(('   known %-24s' % d.known.id if d.known else '   UNKNOWN ' + ' ' * 22) + str(d)
                         for d in diffs)
    for d in diffs:
        print(('known   ' if d.known else 'UNKNOWN ') + str(d))
    assert not unknown, '%d differences from Kafka not listed in docs/DIFFERENCES.md:\n%s' % (
        len(unknown), '\n'.join(str(d) for d in unknown[:60]))


def test_corpus_covers_every_version_spool_serves():
    """The full corpus sends every (API, version) of src/broker/api.c."""
    steps = {(st.api, st.version) for sc in diff_corpus.scenarios(True) for st in sc.steps}
    missing = [(kafka_diff.S.api_name(a), v) for a, (lo, hi) in sorted(diff_corpus.SPOOL.items())
               for v in range(lo, hi + 1) if (a, v) not in steps and (a, v) not in KIP896_ON_SPOOL_ALONE]
    assert not missing, missing


# Versions Kafka 4.0 removed that Spool serves and Kafka 4.3 cannot be
# compared with (it closes the connection): test_0064 tests them on Spool
from test_0064_kip896_versions import VERSIONS as KIP896_ON_SPOOL_ALONE  # noqa: E402


def test_kip896_versions_are_below_kafka():
    """Each version test_0064 tests alone is below Kafka 4.3's range and
    served by Spool."""
    for a, v in KIP896_ON_SPOOL_ALONE:
        assert v < diff_corpus.KAFKA_MIN[a] and diff_corpus.SPOOL[a][0] <= v, (a, v)


def test_known_differences_are_documented():
    """kafka_diff.KNOWN and the table of docs/DIFFERENCES.md list the same ids."""
    import re
    doc = (Path(__file__).resolve().parents[2] / 'docs' / 'DIFFERENCES.md').read_text()
    table = doc.split('## Differences kept', 1)[1].split('\n## ', 1)[0]
    documented = set(re.findall(r'^\| `([a-z0-9-]+)` \|', table, re.M))
    known = {k.id for k in kafka_diff.KNOWN}
    assert known == documented, (sorted(known - documented), sorted(documented - known))


@pytest.mark.parametrize('sc', SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_requests(runner, sc):
    t0 = time.monotonic()
    diffs = runner.run(sc)
    _check(runner, sc.name, diffs, time.monotonic() - t0)


@pytest.mark.parametrize('session', SESSIONS, ids=[s.name for s in SESSIONS])
def test_recorded_session(runner, kafka, session):
    """A real client's session against Kafka, recorded through the proxy,
    then replayed to both with names of its own."""
    t0 = time.monotonic()
    frames, names, ids = kafka_record.record(kafka.port, session)
    assert frames, 'nothing recorded'
    if os.environ.get('SPOOL_DIFF_RECORDINGS'):     # keep it, e.g. to look at a client's requests
        d = Path(os.environ['SPOOL_DIFF_RECORDINGS'])
        d.mkdir(parents=True, exist_ok=True)
        kafka_record.write_recording(d / ('%s.jsonl' % session.name), frames, names, ids)
    sc = kafka_record.to_scenario('session-' + session.name, frames, names, ids, diff_corpus.SPOOL,
                                  topics=session.topics, groups=session.groups)
    diffs = runner.run(sc)
    _check(runner, sc.name, diffs, time.monotonic() - t0)

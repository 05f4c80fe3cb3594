#!/usr/bin/env python3
"""The Java ecosystem against Spool: Kafka's Java clients, Kafka Streams and
Kafka Connect 4.3.1, and the small Java programs of tests/java/src that
drive them (tests/integration/test_0051, 0053, 0054, 0057).

    tests/java/java_side.py build     fetch the jars and compile (once)

build: the jars pinned in tests/java/pom.xml from Maven Central with
`mvn -C dependency:copy-dependencies` (checksums checked against Central's)
into .cache/java-4.3.1/libs, then `javac` of tests/java/src into
.cache/java-4.3.1/classes (all git-ignored).  Two stamps: libs.sha256 (the
pom's SHA-256 and each jar's) and classes.sha256 (the first stamp's and each
source's); every build re-checks them, fetches again when the jars do not
match their pom, compiles again when the sources or jars changed.

run(scenarios, workdir, name=bootstrap, ...): one JVM running
dev.spool.javatest.Main; returns {(name, scenario): line} from its JSON
lines.  java(main_class, *args): the command line of any class on that
classpath (ConnectStandalone, ConnectDistributed, ...).

Standard library only (Python 3.9+); needs java and javac (17+) and mvn.
"""
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

VERSION = '4.3.1'
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CACHE = Path(os.environ.get('SPOOL_JAVA_CACHE') or ROOT / '.cache' / ('java-%s' % VERSION))
LIBS = CACHE / 'libs'
CLASSES = CACHE / 'classes'
LIBS_STAMP = CACHE / 'libs.sha256'
CLASSES_STAMP = CACHE / 'classes.sha256'
SRC = HERE / 'src'
JAVA = os.environ.get('JAVA', 'java')
JAVAC = os.environ.get('JAVAC', 'javac')
# Quiet clients: warnings and errors to stderr (the Kafka tools' config).
LOG4J = ROOT / 'tests' / 'kafka' / 'log4j2-tools.properties'
# Short-lived JVMs: C1 only, serial GC (a second or more off each start on
# two cores).
JVM_OPTS = ['-XX:TieredStopAtLevel=1', '-XX:+UseSerialGC', '-Xss1m', '-Djava.awt.headless=true',
            '-Dlog4j2.configurationFile=%s' % LOG4J]


def log(*a):
    print('java-side:', *a, file=sys.stderr, flush=True)


def _sha256(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def _sources():
    return sorted(SRC.rglob('*.java'))


def _lines(path):
    return [l for l in path.read_text().split('\n') if l] if path.exists() else []


def _libs_ok():
    """The jars of this pom, each with the SHA-256 it was fetched with."""
    lines = _lines(LIBS_STAMP)
    if len(lines) < 2 or lines[0] != 'pom ' + _sha256(HERE / 'pom.xml'):
        return False
    for line in lines[1:]:
        digest, name = line.split('  ', 1)
        p = LIBS / name
        if not p.exists() or _sha256(p) != digest:
            return False
    return True


def _classes_want():
    """What the classes are compiled from: these sources, these jars."""
    return (['libs ' + _sha256(LIBS_STAMP)] +
            ['%s  %s' % (_sha256(p), p.relative_to(SRC)) for p in _sources()])


def _fetch():
    t0 = time.time()
    log('fetching Kafka clients, Streams and Connect %s from Maven Central into %s '
        '(once; about 110 MB)' % (VERSION, LIBS))
    if LIBS.exists():
        for p in LIBS.iterdir():
            p.unlink()
    LIBS.mkdir(parents=True, exist_ok=True)
    cmd = ['mvn', '-q', '-B', '-C', '-f', str(HERE / 'pom.xml'), 'dependency:copy-dependencies',
           '-DoutputDirectory=%s' % LIBS, '-Dmdep.useRepositoryLayout=false']
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    if r.returncode != 0:
        raise RuntimeError('mvn failed (%d):\n%s' % (r.returncode, r.stdout[-4000:]))
    jars = sorted(p.name for p in LIBS.iterdir() if p.suffix == '.jar')
    for want in ('kafka-clients', 'kafka-streams', 'connect-runtime', 'connect-file'):
        if not any(j.startswith('%s-%s' % (want, VERSION)) for j in jars):
            raise RuntimeError('the fetch did not bring %s-%s.jar: %s' % (want, VERSION, jars))
    lines = ['pom ' + _sha256(HERE / 'pom.xml')] + ['%s  %s' % (_sha256(LIBS / j), j) for j in jars]
    LIBS_STAMP.write_text('\n'.join(lines) + '\n')
    size = sum((LIBS / j).stat().st_size for j in jars)
    log('fetched %d jars, %.1f MB, in %.0f s' % (len(jars), size / 1e6, time.time() - t0))


def _compile():
    t0 = time.time()
    if CLASSES.exists():
        for p in sorted(CLASSES.rglob('*'), reverse=True):
            p.rmdir() if p.is_dir() else p.unlink()
    CLASSES.mkdir(parents=True, exist_ok=True)
    cmd = [JAVAC, '-nowarn', '-encoding', 'UTF-8', '--release', '17', '-d', str(CLASSES),
           '-cp', str(LIBS / '*')] + [str(p) for p in _sources()]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    if r.returncode != 0:
        raise RuntimeError('javac failed (%d):\n%s' % (r.returncode, r.stdout[-6000:]))
    CLASSES_STAMP.write_text('\n'.join(_classes_want()) + '\n')
    log('compiled %d sources in %.1f s' % (len(_sources()), time.time() - t0))


_built = False


def build():
    """Fetches the jars and compiles the sources unless the stamps say it
    is done (checked once per process); returns the classpath.  Raises on
    failure."""
    global _built
    if not _built:
        if not _libs_ok():
            _fetch()
        if _lines(CLASSES_STAMP) != _classes_want():
            _compile()
        _built = True
    return classpath()


def classpath():
    return '%s:%s' % (CLASSES, LIBS / '*')


def java(main_class, *args, heap='384m'):
    """The command line running main_class with the Java side's classpath."""
    return [JAVA, '-Xmx%s' % heap] + JVM_OPTS + ['-cp', classpath(), main_class] + [str(a) for a in args]


def run(scenarios, workdir, timeout=300, **brokers):
    """Runs dev.spool.javatest.Main with the scenarios against each broker
    (name=bootstrap) in one JVM.  Returns ({(name, scenario): line},
    CompletedProcess).  A scenario that printed nothing is absent."""
    build()
    args = [','.join(scenarios), str(workdir)] + ['%s=%s' % kv for kv in brokers.items()]
    p = subprocess.run(java('dev.spool.javatest.Main', *args, heap='768m'), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True, timeout=timeout)
    out = {}
    for line in p.stdout.splitlines():
        if line.startswith('{'):
            d = json.loads(line)
            out[(d['broker'], d['scenario'])] = d
    return out, p


def _main(argv):
    if argv == ['build']:
        print(build())
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == '__main__':
    sys.exit(_main(sys.argv[1:]))

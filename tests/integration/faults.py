"""The LD_PRELOAD fault-injection shim (tests/fault/spfault.c) for tests.

    from faults import fault_env, rule, injected
    b = start_broker(env=fault_env(rule('fdatasync', path='/t-0/', nth=3)))
    ...
    assert injected(b.log_text()) == [Fault('fdatasync', '<dir>/t-0/...log', 'EIO', 1, 3)]

Rules (see spfault.c): a call name (fdatasync, fsync, pwrite, write, open,
accept), an optional path substring, nth= (only the n-th matching call) or
from= with optional count=, and the errno to fail with (default EIO).

The shim is $SPFAULT_LIB, else libspfault.so beside $SPOOLD (`make fault`;
`make integration` builds it).  A broker built with ASan or TSan gets its
sanitizer runtime preloaded first, as the runtime requires.
"""

import collections
import os
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

Fault = collections.namedtuple('Fault', 'call path errno rule n')

_LINE = re.compile(r'^spfault: (\w+)\((.*)\) -> (\w+(?: \d+)?) \(rule (\d+), call (\d+)\)$',
                   re.M)


def spoold_path():
    return os.environ.get('SPOOLD') or str(REPO / 'build' / 'spoold')


def shim_path(spoold=None):
    lib = os.environ.get('SPFAULT_LIB') or str(Path(spoold or spoold_path()).parent
                                               / 'libspfault.so')
    if not os.path.exists(lib):
        raise FileNotFoundError('%s not built (make fault)' % lib)
    return lib


def _sanitizer_runtime(binary):
    """The ASan/TSan shared runtime the binary links, or None."""
    try:
        out = subprocess.run(['ldd', binary], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, universal_newlines=True,
                             timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r'^\s*lib(?:asan|tsan)\.so[.\d]* => (\S+)', out, re.M)
    return m.group(1) if m else None


def rule(call, path=None, nth=None, from_=None, count=None, errno=None):
    """One SPFAULT rule, e.g. rule('open', path='.index', errno='EMFILE')."""
    parts = [call]
    for k, v in (('path', path), ('nth', nth), ('from', from_), ('count', count),
                 ('errno', errno)):
        if v is not None:
            parts.append('%s=%s' % (k, v))
    return ':'.join(parts)


def fault_env(*rules, spoold=None):
    """Environment for start_broker(env=...) (or any subprocess): the shim
    preloaded with these rules."""
    binary = spoold or spoold_path()
    preload = [shim_path(binary)]
    runtime = _sanitizer_runtime(binary)
    if runtime:
        preload.insert(0, runtime)
    return {'LD_PRELOAD': ' '.join(preload), 'SPFAULT': ';'.join(rules)}


def injected(text):
    """The faults the shim reported in a log: [Fault(call, path, errno, rule, n)]."""
    return [Fault(c, p, e, int(r), int(n)) for c, p, e, r, n in _LINE.findall(text)]


def sigstop(pid, timeout=10):
    """SIGSTOP a process and return once every one of its threads is stopped.

    A stop signal is not synchronous for a multi-threaded process: the
    thread the kernel picks must first be scheduled to start the group
    stop, and until then the other threads go on running (on a loaded
    2-core machine, long enough to answer a request)."""
    import signal
    import time
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + timeout
    while True:
        running = []
        for tid in os.listdir('/proc/%d/task' % pid):
            try:
                with open('/proc/%d/task/%s/stat' % (pid, tid)) as f:
                    state = f.read().rsplit(')', 1)[1].split()[0]
            except FileNotFoundError:
                continue
            if state not in ('T', 't', 'Z', 'X'):
                running.append(tid)
        if not running:
            return
        if time.monotonic() > deadline:
            raise TimeoutError('threads %s of %d not stopped after %ss' % (running, pid, timeout))
        time.sleep(0.001)

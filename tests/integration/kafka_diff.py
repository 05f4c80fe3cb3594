"""Differential protocol tests: the same requests to Apache Kafka 4.3 and to
Spool, both answers decoded with kafka_schema and compared field by field.

A *scenario* is a list of Steps (one request each, on a named connection)
played against both brokers at once, in order, each broker in the same
state: the scenario's topics and groups have names of its own
(Names.fresh), created the same way on both first.  A step's body is a
template: strings '{t}', '{g}', '{id:t}' (a topic's id on that broker),
'{member}' (a value an earlier answer of that broker taught, see
Step.learn) are filled in per broker before encoding.

Answers are normalised before they are compared (normalise()):

  * IGNORE: fields whose values may legitimately differ between two
    brokers (cluster ids, ports, throttle times, error message texts
    where only the code is specified, ...) are blanked;
  * symbols: topic ids become 'id:<topic name>', member ids 'member#N'
    in the order that broker handed them out, so the two can be compared;
  * SORT: arrays whose order Kafka does not promise are sorted by key;
  * answers that list every topic or group of the broker keep only the
    scenario's own (other tests share the Kafka broker).

Then every remaining difference is reported as (API, version, field path,
Kafka's value, Spool's value) and checked against KNOWN, the short list of
differences that Spool keeps on purpose, each with its reason (mirrored in
docs/DIFFERENCES.md).  A difference matching no KNOWN entry fails the test.
"""

import itertools
import re
import struct
import time
from concurrent.futures import ThreadPoolExecutor

import kafka_wire as kw
from kafka_schema import ZERO_UUID, CodecError, parse_batches, schemas

S = schemas()

# ---------------------------------------------------------------- rules

# (api key or None for every API, field path pattern, why the value may differ)
# A path is 'Topics[].Partitions[].ErrorCode'; a pattern matches it whole or
# as a suffix after a '.'; '*' is any text (path_match).
IGNORE = [
    (None, 'ThrottleTimeMs', 'quotas and throttling are per broker'),
    (None, 'ClusterId', 'each broker has its own cluster id'),
    (None, 'Port', 'each broker listens on its own port'),
    (None, 'BatchIndexErrorMessage', 'texts are not part of the protocol; the batch index is compared'),
    (18, 'SupportedFeatures', 'KRaft feature levels (metadata.version, ...) Spool has none of'),
    (18, 'FinalizedFeatures', 'KRaft feature levels (metadata.version, ...) Spool has none of'),
    (18, 'FinalizedFeaturesEpoch', 'KRaft feature levels (metadata.version, ...) Spool has none of'),
    (18, 'ZkMigrationReady', 'no ZooKeeper migration in either'),
    (19, 'Topics[].Configs', 'compared in the configs scenarios through DescribeConfigs'),
    (32, 'Documentation', 'texts'),
    (35, 'LogDir', 'each broker has its own directories'),
    (35, 'TotalBytes', 'the size of the disk under each broker\'s directory, sampled at different times'),
    (35, 'UsableBytes', 'the free space of the disk under each broker\'s directory, sampled at different times'),
    (65, 'TransactionStates[].TransactionStartTimeMs', 'each broker\'s own clock when the transaction began'),
]

# (api key or None, field path pattern): texts compared by presence only
# (the words are not part of the protocol, but whether there is a message
# is: Sarama 1.22 takes an AlterConfigs answer without one for success)
TEXTS = [
    (None, 'ErrorMessage'),
]

# (api key, array path, key field): arrays compared as maps by that key, so
# that an entry one side lacks is reported by name (path 'Configs[retention.ms]')
KEYED = [
    (18, 'ApiKeys', 'ApiKey'),
    (32, 'Results[].Configs', 'Name'),
]

# (api key, array path, key field names): arrays in no promised order
SORT = [
    (0, 'Responses', ('Name',)),
    (0, 'Responses[].PartitionResponses', ('Index',)),
    (2, 'Topics', ('Name',)),
    (2, 'Topics[].Partitions', ('PartitionIndex',)),
    (1, 'Responses', ('Topic', 'TopicId')),
    (1, 'Responses[].Partitions', ('PartitionIndex',)),
    (3, 'Topics', ('Name',)),
    (3, 'Topics[].Partitions', ('PartitionIndex',)),
    (16, 'Groups', ('GroupId',)),
    (32, 'Results[].Configs', ('Name',)),
    (32, 'Results', ('ResourceType', 'ResourceName')),
    (35, 'Results[].Topics', ('Name',)),
    (35, 'Results[].Topics[].Partitions', ('PartitionIndex',)),
    (19, 'Topics', ('Name',)),
    (20, 'Responses', ('Name',)),
    (37, 'Results', ('Name',)),
    (15, 'Groups', ('GroupId',)),
    (15, 'Groups[].Members', ('MemberId',)),
    (11, 'Members', ('MemberId',)),
    (9, 'Topics', ('Name',)),
    (9, 'Topics[].Partitions', ('PartitionIndex',)),
    (9, 'Groups[].Topics', ('Name',)),
    (9, 'Groups[].Topics[].Partitions', ('PartitionIndex',)),
    (42, 'Results', ('GroupId',)),
    (21, 'Topics', ('Name',)),
    (21, 'Topics[].Partitions', ('PartitionIndex',)),
    (47, 'Topics', ('Name',)),
    (47, 'Topics[].Partitions', ('PartitionIndex',)),
    (33, 'Responses', ('ResourceType', 'ResourceName')),
    (44, 'Responses', ('ResourceType', 'ResourceName')),
    (24, 'ResultsByTopicV3AndBelow', ('Name',)),
    (24, 'ResultsByTopicV3AndBelow[].ResultsByPartition', ('PartitionIndex',)),
    (24, 'ResultsByTransaction', ('TransactionalId',)),
    (24, 'ResultsByTransaction[].TopicResults', ('Name',)),
    (24, 'ResultsByTransaction[].TopicResults[].ResultsByPartition', ('PartitionIndex',)),
    (65, 'TransactionStates[].Topics', ('Topic',)),
    (65, 'TransactionStates[].Topics[].Partitions', ()),      # a set of partition numbers
    (66, 'TransactionStates', ('TransactionalId',)),
]

# Fields holding ids a broker makes up: compared as symbols.
MEMBER_FIELDS = ('MemberId', 'Leader')

# (api key, field path): producer ids a broker hands out (each from blocks
# its own controller grants), compared as '<producer id>' when one was
# given (>= 0); -1, the answer of a failed request, is compared as it is
PRODUCER_ID_FIELDS = [
    (22, 'ProducerId'),
    (65, 'TransactionStates[].ProducerId'),
    (66, 'TransactionStates[].ProducerId'),
]


class Known:
    """A difference Spool keeps on purpose: a row of docs/DIFFERENCES.md,
    found there by its id.  It matches a difference by API, versions,
    generic field path (a pattern, as IGNORE's) and optionally by
    predicates on Kafka's value, Spool's, both, or the whole Diff, or by
    a text the step's name contains."""

    def __init__(self, id, api, versions, path, reason, kafka=None, spool=None, when=None, label=None,
                 diff=None):
        self.id = id
        self.api = api
        self.versions = versions          # (lo, hi) or None for all
        self.path = path
        self.reason = reason
        self.kafka = kafka
        self.spool = spool
        self.when = when                  # (kafka, spool) -> bool
        self.label = label
        self.diff = diff                  # Diff -> bool

    def matches(self, d):
        if self.api is not None and d.api != self.api:
            return False
        if self.versions is not None and not self.versions[0] <= d.version <= self.versions[1]:
            return False
        if not path_match(d.path, self.path):
            return False
        if self.kafka is not None and not self.kafka(d.kafka):
            return False
        if self.spool is not None and not self.spool(d.spool):
            return False
        if self.when is not None and not self.when(d.kafka, d.spool):
            return False
        if self.label is not None and self.label not in d.step:
            return False
        if self.diff is not None and not self.diff(d):
            return False
        return True


def _is(*values):
    return lambda x: x in values


def _spool_ranges():
    """(lo, hi) of each API Spool serves, read from src/broker/api.c."""
    from pathlib import Path
    src = (Path(__file__).resolve().parents[2] / 'src' / 'broker' / 'api.c').read_text()
    norm = lambda n: n.replace('_', '').upper()                      # noqa: E731
    keys = {norm(S.api_name(k)): k for k in S.requests}
    return {keys[norm(name)]: (int(lo), int(hi))
            for name, lo, hi in re.findall(r'\{\s*SP_API_([A-Z_]+),\s*(\d+),\s*(\d+),', src)}


SPOOL_RANGES = _spool_ranges()
CLOSED = '<connection closed>'
NO_ANSWER = '<no answer>'
_answered = lambda x: isinstance(x, str) and x.startswith('response')   # noqa: E731
_configs = 'Results[].Configs'

# Differences kept on purpose, each with its reason; each id is a row of
# docs/DIFFERENCES.md (test_0061 checks that the two lists agree).
KNOWN = [
    # versions and APIs
    Known('apis-not-served', 18, None, 'ApiKeys[*]', 'APIs Spool does not serve (yet)', spool=_is('<absent>')),
    Known('newer-versions', 18, None, 'ApiKeys[*].MaxVersion', 'newer versions not built yet',
          when=lambda k, s: s < k),
    Known('kip-896-versions', 18, None, 'ApiKeys[*].MinVersion', 'versions Kafka 4.0 removed', when=lambda k, s: s < k),
    Known('kip-896-versions', 8, (0, 1), '<outcome>', 'OffsetCommit v0-1, removed in Kafka 4.0', kafka=_is(CLOSED)),
    Known('kip-896-versions', 9, (0, 0), '<outcome>', 'OffsetFetch v0, removed in Kafka 4.0', kafka=_is(CLOSED)),
    Known('newer-versions', None, None, '<outcome>', 'a version above Spool\'s range', kafka=_answered,
          spool=_is(CLOSED), diff=lambda d: d.api in SPOOL_RANGES and d.version > SPOOL_RANGES[d.api][1]),
    Known('apis-not-served', None, None, '<outcome>', 'an API Spool does not serve', kafka=_answered,
          spool=_is(CLOSED), diff=lambda d: d.api not in SPOOL_RANGES),
    Known('produce-v0-2', 0, (0, 2), '<outcome>', 'Produce v0-2 refused per partition, not by closing',
          kafka=_is(CLOSED), spool=_answered),
    # fetch sessions
    Known('fetch-sessions', 1, (7, 18), 'SessionId', 'no fetch sessions (KIP-227)', spool=_is(0)),
    Known('group-id-nul', 11, None, 'ErrorCode', 'a group id with a NUL byte', kafka=_is(0), spool=_is(24),
          label='nul group'),
    # topic creation
    Known('produce-creates-topics', 0, None, 'Responses[].PartitionResponses[].ErrorCode',
          'Produce creates a missing topic', kafka=_is(3), spool=_is(0), label='unknown topic'),
    Known('produce-creates-topics', 0, None, 'Responses[].PartitionResponses[].BaseOffset',
          'Produce creates a missing topic', kafka=_is(-1), label='unknown topic'),
    Known('produce-creates-topics', 0, None, 'Responses[].PartitionResponses[].LogStartOffset',
          'Produce creates a missing topic', kafka=_is(-1), spool=_is(0), label='unknown topic'),
    Known('auto-create-waits', 3, None, 'Topics[].ErrorCode', 'Spool answers once the topic exists',
          kafka=_is(3), spool=_is(0), label='auto-create'),
    Known('auto-create-waits', 3, None, 'Topics[].Partitions*', 'Spool answers once the topic exists',
          label='auto-create'),
    Known('auto-create-waits', 3, None, 'Topics[].TopicId', 'Spool answers once the topic exists',
          label='auto-create'),
    Known('internal-topics', 19, None, 'Topics[].ErrorCode', 'internal topics are the broker\'s',
          kafka=_is(36), spool=_is(42), label='internal topic'),
    Known('internal-topics', 37, None, 'Results[].ErrorCode', 'internal topics are the broker\'s',
          kafka=_is(0), spool=_is(42), label='internal topic'),
    Known('internal-topics', 37, None, 'Results[].ErrorMessage', 'internal topics are the broker\'s',
          kafka=_is(None), spool=_is('<text>'), label='internal topic'),
    # configs
    Known('configs-not-built', 32, None, _configs + '[*]', 'keys of features Spool has not built',
          spool=_is('<absent>'), diff=lambda d: d.path.split('[')[-1].rstrip(']') in ABSENT_CONFIGS),
    Known('durable-default', 32, None, _configs + '[*flush.messages].Value', 'flush.messages=1 by default',
          kafka=_is('9223372036854775807'), spool=_is('1')),
    Known('durable-default', 32, None, _configs + '[*flush.messages].Synonyms[].Value',
          'flush.messages=1 by default', kafka=_is('9223372036854775807'), spool=_is('1')),
    Known('durable-default', 32, None, _configs + '[log.flush.interval.messages].Value',
          'log.flush.interval.messages=1 by default', kafka=_is('9223372036854775807'), spool=_is('1')),
    Known('ms-keys', 32, None, _configs + '[log.retention.ms].Value', 'the *.ms broker keys hold the default',
          kafka=_is(None)),
    Known('ms-keys', 32, None, _configs + '[*].Synonyms*', 'the *.ms broker keys hold the default',
          diff=lambda d: any(k in d.path for k in ('[retention.ms]', '[segment.ms]', '[segment.jitter.ms]',
                                                   '[flush.ms]'))),
    Known('cluster-min-isr', 32, None, _configs + '[min.insync.replicas].*', 'Kafka\'s format writes a '
          'cluster-wide min.insync.replicas', diff=lambda d: d.path.endswith(('ConfigSource', 'Synonyms',
                                                                              'Synonyms.<length>'))),
    # Kafka answers that are its own bugs
    Known('kafka-no-answer', 0, None, '<outcome>', 'Kafka 4.3 never answers a null records field',
          kafka=_is(CLOSED), label='null records'),
    Known('kafka-no-answer', 33, None, '<outcome>', 'Kafka 4.3 never answers AlterConfigs naming a resource twice',
          kafka=_is(CLOSED), label='a resource twice'),
    Known('kafka-unknown-error', 44, None, 'Responses[].ErrorCode', 'Kafka 4.3 answers UNKNOWN_SERVER_ERROR',
          kafka=_is(-1), spool=_is(42), label='unknown operation'),
    Known('kafka-unknown-error', 44, None, 'Responses[].ErrorMessage', 'Kafka 4.3 answers UNKNOWN_SERVER_ERROR',
          kafka=_is(None), spool=_is('<text>'), label='unknown operation'),
]

# Topic and broker config keys Spool does not have (configs-not-built)
ABSENT_CONFIGS = {
    'remote.storage.enable', 'local.retention.ms', 'local.retention.bytes', 'remote.log.copy.disable',
    'remote.log.delete.on.disable',                                            # tiered storage
    'leader.replication.throttled.replicas', 'follower.replication.throttled.replicas',   # replication
    'preallocate',
    'log.retention.hours', 'broker.id',                                        # aliases
}


def _glob(pat):
    rx = _GLOBS.get(pat)
    if rx is None:
        rx = _GLOBS[pat] = re.compile('(?:.*\\.)?' + re.escape(pat).replace('\\*', '.*') + '$')
    return rx


_GLOBS = {}


def path_match(path, pat):
    """Whether path matches pat whole or as a suffix after a '.'; '*' is
    any text, everything else (brackets too) is literal."""
    return _glob(pat).match(path) is not None


# ---------------------------------------------------------------- names


class Names:
    """Per-scenario names: topics and groups of its own on both brokers."""
    _n = itertools.count(1)
    _run = '%04x' % (int(time.time() * 1000) & 0xffff)

    @classmethod
    def fresh(cls, label):
        return 'd%s-%d-%s' % (cls._run, next(cls._n), re.sub(r'[^A-Za-z0-9_.-]', '-', label))


# ---------------------------------------------------------------- connections


class Closed(Exception):
    pass


class Conn:
    def __init__(self, port, timeout=30.0):
        self.sock = kw.connect(port, timeout=timeout)
        self.timeout = timeout
        self.corr = 0

    def send(self, frame_without_size):
        self.sock.sendall(struct.pack('>i', len(frame_without_size)) + frame_without_size)

    def recv(self, timeout=None):
        try:
            return kw.recv_frame(self.sock, timeout or self.timeout)
        except (EOFError, ConnectionResetError, BrokenPipeError):
            raise Closed()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Outcome:
    """What one broker did with one request."""

    def __init__(self, kind, header=None, body=None, raw=None, error=None):
        self.kind = kind            # 'response', 'closed', 'none' (acks=0), 'undecodable'
        self.header = header
        self.body = body
        self.raw = raw
        self.error = error
        self.seconds = 0.0

    def __repr__(self):
        return 'Outcome(%s, %r)' % (self.kind, self.body if self.body is not None else self.error)


# ---------------------------------------------------------------- one broker


class Target:
    """One broker (Kafka or Spool) in a scenario: its connections, its
    names, what its answers taught (member ids, topic ids)."""

    def __init__(self, name, port):
        self.name = name
        self.port = port
        self.conns = {}
        self.vars = {}                 # template values: '{t}' -> name, '{member}' -> ...
        self.topic_ids = {}            # topic name -> uuid str
        self.strings = {}              # recorded member id -> this broker's (replays)
        self.symbols = {}              # (kind, value) -> symbol

    def conn(self, key):
        c = self.conns.get(key)
        if c is None:
            c = self.conns[key] = Conn(self.port)
        return c

    def drop(self, key):
        c = self.conns.pop(key, None)
        if c:
            c.close()

    def close(self):
        for k in list(self.conns):
            self.drop(k)

    def call(self, key, version, body, conn='main', client_id='spool-diff', no_response=False,
             timeout=None, raw_body=None):
        """Sends one request; returns an Outcome.  The connection is
        dropped when the broker closes it (the next call opens another)."""
        c = self.conn(conn)
        c.corr += 1
        hv = S.request_header_version(key, version)
        hdr = S.encode(S.request_header, {'RequestApiKey': key, 'RequestApiVersion': version,
                                          'CorrelationId': c.corr, 'ClientId': client_id}, hv)
        try:
            b = raw_body if raw_body is not None else S.encode(S.requests[key], body, version)
        except CodecError as e:
            return Outcome('unencodable', error=str(e))
        try:
            c.send(hdr + b)
            if no_response:
                return Outcome('none')
            payload = c.recv(timeout)
        except Closed:
            self.drop(conn)
            return Outcome('closed')
        except OSError as e:
            self.drop(conn)
            return Outcome('closed', error=str(e))
        try:
            h, body = S.decode_response(key, version, payload)
        except CodecError as e:
            return Outcome('undecodable', raw=payload, error=str(e))
        if h['CorrelationId'] != c.corr:
            return Outcome('undecodable', raw=payload,
                           error='correlation id %d, sent %d' % (h['CorrelationId'], c.corr))
        return Outcome('response', h, body, payload)

    # -- templates

    def fill(self, x):
        """The template x with this broker's values."""
        if isinstance(x, str):
            if x in self.strings:
                return self.strings[x]
            if '{' in x:
                m = _FIELD.fullmatch(x)
                if m:                       # the whole value: as learnt (an int stays one)
                    return self._var(m.group(1))
                return _FIELD.sub(lambda m: str(self._var(m.group(1))), x)
            return x
        if isinstance(x, dict):
            return {k: self.fill(v) for k, v in x.items()}
        if isinstance(x, list):
            return [self.fill(e) for e in x]
        if callable(x):
            return x(self)
        return x

    def _var(self, name):
        if name.startswith('id:'):
            t = self.vars.get(name[3:], name[3:])
            return self.topic_ids.get(t, ZERO_UUID)
        if name not in self.vars:
            raise KeyError('template variable {%s} has no value on %s' % (name, self.name))
        return self.vars[name]

    def symbol(self, kind, value):
        k = (kind, value)
        if k not in self.symbols:
            n = sum(1 for kk in self.symbols if kk[0] == kind) + 1
            self.symbols[k] = '%s#%d' % (kind, n)
        return self.symbols[k]


_FIELD = re.compile(r'\{([A-Za-z0-9_:.-]+)\}')


# ---------------------------------------------------------------- steps


class Step:
    """One request of a scenario.

    body: a template (see Target.fill) or a callable(target) -> dict.
    conn: the connection to send it on (several members of a group use
    several connections).  learn: {var: callable(body) -> value} read from
    each broker's own answer (for example the member id JoinGroup gave).
    no_response: acks=0 produce.  wait: seconds to sleep before sending
    (both brokers alike).  concurrent: a group of steps sent together and
    answered in any order (JoinGroup of several members) is a list of Steps
    with the same concurrent label: the steps of one connection run in
    order, the connections in threads (a step's wait is its own delay
    there).  retry: a predicate on the answer; the request is sent again
    until it holds (at most retry_for seconds), for states a broker reaches
    in its own time (a topic auto-created, a rebalance begun).
    """

    def __init__(self, api, version, body=None, conn='main', label=None, learn=None,
                 no_response=False, wait=0.0, compare=True, client_id='spool-diff',
                 concurrent=None, raw_body=None, timeout=None, retry=None, retry_for=15.0):
        self.api = S.api_key(api) if isinstance(api, str) else api
        self.version = version
        self.body = body if body is not None else {}
        self.conn = conn
        self.label = label or ''
        self.learn = learn or {}
        self.no_response = no_response
        self.wait = wait
        self.compare = compare
        self.client_id = client_id
        self.concurrent = concurrent
        self.raw_body = raw_body
        self.timeout = timeout
        self.recorded = None            # a recorded session's answer (kafka_record)
        self.retry = retry              # body -> bool: sent again (each broker) until true
        self.retry_for = retry_for      # ...for at most this long

    @property
    def name(self):
        return '%s v%d%s' % (S.api_name(self.api), self.version,
                             (' (%s)' % self.label) if self.label else '')


class Diff:
    def __init__(self, scenario, step, api, version, path, kafka, spool):
        self.scenario = scenario
        self.step = step
        self.api = api
        self.version = version
        self.path = path
        self.kafka = kafka
        self.spool = spool
        self.known = None

    def __str__(self):
        return '%s: %s: %s: Kafka %s, Spool %s%s' % (
            self.scenario, self.step, self.path, _short(self.kafka), _short(self.spool),
            ('  [known: %s, %s]' % (self.known.id, self.known.reason)) if self.known else '')


def _short(x, n=160):
    s = repr(x)
    return s if len(s) <= n else s[:n] + '...'


# ---------------------------------------------------------------- normalising


def _ignored(api, path):
    for a, pat, _why in IGNORE:
        if (a is None or a == api) and path_match(path, pat):
            return True
    return False


def _sort_keys(api, path):
    for a, pat, keys in SORT:
        if a == api and path == pat:
            return keys
    return None


class Keyed(dict):
    """A KEYED array after normalising: entries by key."""


def _keyed(api, path):
    for a, pat, key in KEYED:
        if a == api and path == pat:
            return key
    return None


def _key_name(api, key, value):
    if api == 18 and key == 'ApiKey':
        return '%s(%d)' % (S.api_name(value), value)
    return value


def normalise(api, version, body, target, own_names=None):
    """The comparable form of a decoded answer (see the module comment).
    own_names: names of the scenario's topics and groups; lists of every
    topic or group keep only those."""
    def walk(x, path):
        if isinstance(x, dict):
            out = {}
            for k, v in x.items():
                p = '%s.%s' % (path, k) if path else k
                if _ignored(api, p):
                    out[k] = '<ignored>'
                elif any((a is None or a == api) and path_match(p, pat) for a, pat in TEXTS):
                    out[k] = '<text>' if v else v
                elif k in MEMBER_FIELDS and isinstance(v, str) and v:
                    out[k] = target.symbol('member', v)
                elif isinstance(v, int) and v >= 0 and any(a == api and path_match(p, pat)
                                                           for a, pat in PRODUCER_ID_FIELDS):
                    out[k] = '<producer id>'
                else:
                    out[k] = walk(v, p)
            return out
        if isinstance(x, list):
            p = path + '[]'
            key = _keyed(api, path)
            if key and all(isinstance(e, dict) for e in x):
                return Keyed((_key_name(api, key, e.get(key)), walk(e, p)) for e in x)
            items = [walk(e, p) for e in x]
            keys = _sort_keys(api, path)
            if keys and all(isinstance(e, dict) for e in items):
                items.sort(key=lambda e: tuple(repr(e.get(k)) for k in keys))
            elif keys == () and all(isinstance(e, (int, str)) for e in items):
                items.sort()
            return items
        if isinstance(x, str) and _UUID.match(x):
            if x == ZERO_UUID:
                return x
            for name, tid in target.topic_ids.items():
                if tid == x:
                    return 'id:' + name
            return '<uuid>'
        return x

    if own_names is not None:
        body = _only_own(api, body, own_names)
    return walk(body, '')


_UUID = re.compile(r'^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$')


def _only_own(api, body, names):
    """Answers listing every topic/group of the broker: the scenario's own."""
    body = dict(body)
    if api == 3 and body.get('Topics') is not None:          # Metadata, all topics
        body['Topics'] = [t for t in body['Topics'] if t.get('Name') in names]
    if api in (15, 16) and body.get('Groups') is not None:   # DescribeGroups, ListGroups
        body['Groups'] = [g for g in body['Groups'] if g.get('GroupId') in names or g.get('GroupId') == '']
    if api == 35 and body.get('Results') is not None:        # DescribeLogDirs, all topics
        res = []
        for r in body['Results']:
            r = dict(r)
            r['Topics'] = [t for t in r.get('Topics') or [] if t.get('Name') in names]
            res.append(r)
        body['Results'] = res
    return body


def compare(a, b, path=''):
    """[(path, a value, b value)] where normalised a and b differ."""
    out = []
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            if isinstance(a, Keyed):
                p = '%s[%s]' % (path, k)          # a KEYED array's entry
            else:
                p = '%s.%s' % (path, k) if path else k
            if k not in a or k not in b:
                out.append((p, a.get(k, '<absent>'), b.get(k, '<absent>')))
            else:
                out += compare(a[k], b[k], p)
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [(path + '.<length>', len(a), len(b))] + (
                [(path, a, b)] if len(repr(a)) + len(repr(b)) < 2000 else [])
        for i, (x, y) in enumerate(zip(a, b)):
            out += compare(x, y, '%s[%d]' % (path, i))
        return out
    if isinstance(a, bytes) and isinstance(b, bytes) and path.endswith('Records'):
        return [(path + sub, x, y) for sub, x, y in records_diff(a, b)]
    if a != b:
        out.append((path, a, b))
    return out


def generic_path(p):
    return re.sub(r'\[\d+\]', '[]', p)


def records_diff(kb, sb):
    """Differences between two records fields, batch header by batch header."""
    if kb == sb:
        return []
    ka, sa = parse_batches(kb), parse_batches(sb)
    out = []
    if len(ka) != len(sa):
        out.append(('<batches>', len(ka), len(sa)))
    for i, (x, y) in enumerate(zip(ka, sa)):
        for k in sorted(set(x) | set(y)):
            if k in ('Crc',) and x.get('PartitionLeaderEpoch') != y.get('PartitionLeaderEpoch'):
                continue
            if x.get(k) != y.get(k):
                out.append(('[%d].%s' % (i, k), x.get(k), y.get(k)))
    return out


def learn_pairs(t, recorded, got):
    """Replays: this broker's member ids for the recorded ones, pairing the
    recorded answer with this broker's field by field (t.strings)."""
    if isinstance(recorded, dict) and isinstance(got, dict):
        for k, rv in recorded.items():
            gv = got.get(k)
            if k in MEMBER_FIELDS and isinstance(rv, str) and isinstance(gv, str) and rv and gv:
                if rv != gv:
                    t.strings.setdefault(rv, gv)
            else:
                learn_pairs(t, rv, gv)
    elif isinstance(recorded, list) and isinstance(got, list) and len(recorded) == len(got):
        for a, b in zip(recorded, got):
            learn_pairs(t, a, b)


# ---------------------------------------------------------------- settling

SETTLE_SECONDS = 15


def _poll(t, api, version, body, done):
    """Sends body on t's 'settle' connection until done(answer) holds."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while time.monotonic() < deadline:
        o = t.call(api, version, body, conn='settle')
        if o.kind == 'response' and done(o.body):
            return True
        time.sleep(0.05)
    return False


def settle(t, api, version, req, resp):
    """After a change of topics or configs that t accepted, waits until t's
    own answers show it.  Kafka's controller applies a change and its
    broker sees it a moment later (Metadata, DescribeConfigs read the
    broker's copy); Spool answers once the change is applied, so for it
    the first look succeeds.  Without this, a request right after a
    change would compare Kafka's past with Spool's present."""
    if api == 19 and not req.get('validateOnly'):                    # CreateTopics
        names = [r['Name'] for r in resp.get('Topics') or [] if r['ErrorCode'] == 0]
        if names:
            _poll(t, 3, 12, {'Topics': [{'Name': n} for n in names], 'AllowAutoTopicCreation': False},
                  lambda b: all(x['ErrorCode'] == 0 and x['Partitions'] and
                                all(p['LeaderId'] >= 0 for p in x['Partitions']) for x in b['Topics']))
    elif api == 20:                                                    # DeleteTopics
        names = [r['Name'] for r in resp.get('Responses') or [] if r['ErrorCode'] == 0 and r.get('Name')]
        if names:
            _poll(t, 3, 12, {'Topics': [{'Name': n} for n in names], 'AllowAutoTopicCreation': False},
                  lambda b: all(x['ErrorCode'] == 3 for x in b['Topics']))
    elif api == 37 and not req.get('ValidateOnly'):                    # CreatePartitions
        want = {x['Name']: x['Count'] for x in req.get('Topics') or []}
        names = [r['Name'] for r in resp.get('Results') or [] if r['ErrorCode'] == 0]
        if names:
            _poll(t, 3, 12, {'Topics': [{'Name': n} for n in names], 'AllowAutoTopicCreation': False},
                  lambda b: all(len(x['Partitions']) == want.get(x['Name']) for x in b['Topics']))
    elif api in (33, 44) and not req.get('ValidateOnly'):              # AlterConfigs, Incremental...
        ok = {(r['ResourceType'], r['ResourceName']) for r in resp.get('Responses') or [] if r['ErrorCode'] == 0}
        for res in req.get('Resources') or []:
            if res['ResourceType'] != 2 or (2, res['ResourceName']) not in ok:
                continue
            want = {}
            for c in res.get('Configs') or []:
                op = c.get('ConfigOperation', 0)
                if op == 0:
                    want[c['Name']] = lambda e, v=c['Value']: e['Value'] == v
                elif op == 1:
                    want[c['Name']] = lambda e: e['ConfigSource'] != 1
            if want:
                _poll(t, 32, 4, {'Resources': [{'ResourceType': 2, 'ResourceName': res['ResourceName'],
                                                'ConfigurationKeys': sorted(want)}]},
                      lambda b: all(want[e['Name']](e) for r in b['Results'] for e in r['Configs']
                                    if e['Name'] in want))


# ---------------------------------------------------------------- running


class Scenario:
    """A named list of Steps with the topics and groups it needs.

    topics: {var: partitions} created on both brokers before the steps
    (names: Names.fresh); groups: [var] given fresh names; configs:
    {var: {key: value}} topic configs at creation."""

    def __init__(self, name, steps, topics=None, groups=(), configs=None, vars=None):
        self.name = name
        self.steps = steps
        self.topics = dict(topics or {})
        self.groups = list(groups)
        self.configs = dict(configs or {})
        self.vars = dict(vars or {})


class Runner:
    """Plays scenarios against Kafka and Spool and collects differences."""

    def __init__(self, kafka_port, spool_port, log=None):
        self.ports = {'kafka': kafka_port, 'spool': spool_port}
        self.diffs = []
        self.steps_run = 0
        self.versions_seen = set()      # (api, version) compared
        self.log = log or (lambda *a: None)
        self.pool = ThreadPoolExecutor(max_workers=8)

    def warm_up(self):
        """Both brokers with __consumer_offsets created and its coordinator
        loaded, so that the first FindCoordinator of a scenario finds the
        same state on both."""
        for t in self.targets().values():
            deadline = time.monotonic() + 60
            while True:
                o = t.call(10, 3, {'Key': 'spool-diff-warm-up', 'KeyType': 0}, conn='setup')
                if o.kind == 'response' and o.body['ErrorCode'] == 0:
                    break
                assert time.monotonic() < deadline, (t.name, o)
                time.sleep(0.2)
            t.close()

    def targets(self):
        return {n: Target(n, p) for n, p in self.ports.items()}

    # -- set-up through the protocol itself (the same on both)

    def create_topics(self, t, topics, configs=None):
        """CreateTopics v7 on target t, then waits until Metadata shows a
        leader for every partition; records the topic ids."""
        if not topics:
            return
        body = {'Topics': [{'Name': n, 'NumPartitions': p, 'ReplicationFactor': 1,
                            'Configs': [{'Name': k, 'Value': str(v)}
                                        for k, v in (configs or {}).get(n, {}).items()]}
                           for n, p in topics.items()], 'TimeoutMs': 30000}
        o = t.call(19, 7, body, conn='setup')
        assert o.kind == 'response', (t.name, o)
        for r in o.body['Topics']:
            assert r['ErrorCode'] == 0, (t.name, r)
        self.wait_topics(t, topics)

    def wait_topics(self, t, topics):
        deadline = time.monotonic() + 30
        while True:
            o = t.call(3, 12, {'Topics': [{'Name': n} for n in topics],
                               'AllowAutoTopicCreation': False}, conn='setup')
            ok = o.kind == 'response' and all(
                tp['ErrorCode'] == 0 and len(tp['Partitions']) == topics[tp['Name']]
                and all(p['LeaderId'] >= 0 for p in tp['Partitions'])
                for tp in o.body['Topics'])
            if ok:
                for tp in o.body['Topics']:
                    t.topic_ids[tp['Name']] = tp['TopicId']
                # Kafka's metadata can name a leader before its replica
                # manager leads (NOT_LEADER_OR_FOLLOWER): ListOffsets tells
                lo = t.call(2, 6, {'ReplicaId': -1, 'Topics': [
                    {'Name': n, 'Partitions': [{'PartitionIndex': i, 'CurrentLeaderEpoch': -1, 'Timestamp': -1}
                                               for i in range(p)]} for n, p in topics.items()]}, conn='setup')
                if lo.kind == 'response' and all(p['ErrorCode'] == 0 for tp in lo.body['Topics']
                                                 for p in tp['Partitions']):
                    return
            assert time.monotonic() < deadline, (t.name, o)
            time.sleep(0.1)

    def prepare(self, sc):
        """Both targets with the scenario's topics created and names set."""
        ts = self.targets()
        names = {}
        for var in sc.topics:
            names[var] = Names.fresh('%s-%s' % (sc.name, var))[:200]
        for var in sc.groups:
            names[var] = Names.fresh('%s-%s' % (sc.name, var))
        topics = {names[v]: p for v, p in sc.topics.items() if p}
        configs = {names[v]: c for v, c in sc.configs.items()}
        futs = []
        for t in ts.values():
            t.vars.update(sc.vars)
            t.vars.update(names)
            futs.append(self.pool.submit(self.create_topics, t, topics, configs))
        for f in futs:
            f.result()
        for t in ts.values():
            for var in sc.topics:
                # a topic the scenario names but does not create (unknown topic)
                t.topic_ids.setdefault(names[var], ZERO_UUID)
        return ts, set(names.values())

    def run(self, sc):
        """Plays scenario sc; returns its differences (also kept in self.diffs)."""
        ts, own = self.prepare(sc)
        found = []
        try:
            steps = list(sc.steps)
            i = 0
            while i < len(steps):
                st = steps[i]
                if st.concurrent:
                    group = [s for s in steps[i:] if s.concurrent == st.concurrent]
                    i += len(group)
                    found += self._run_group(sc, group, ts, own)
                else:
                    i += 1
                    found += self._run_group(sc, [st], ts, own)
        finally:
            for t in ts.values():
                t.close()
        self.diffs += found
        return found

    def _play(self, t, st):
        if st.wait and st.concurrent:       # a concurrent step's own delay, in its thread
            time.sleep(st.wait)
        t0 = time.monotonic()
        o = self._play1(t, st)
        o.seconds = time.monotonic() - t0
        if o.seconds > 5:
            self.log('slow: %s on %s: %.1f s (%s)' % (st.name, t.name, o.seconds, o.kind))
        return o

    def _play1(self, t, st):
        try:
            body = t.fill(st.body(t) if callable(st.body) else st.body)
        except KeyError as e:           # an earlier answer did not teach it
            return Outcome('unfilled', error=str(e))
        deadline = time.monotonic() + st.retry_for
        while True:
            o = t.call(st.api, st.version, body, conn=st.conn, client_id=st.client_id,
                       no_response=st.no_response, timeout=st.timeout, raw_body=st.raw_body)
            if (st.retry is None or time.monotonic() > deadline
                    or (o.kind == 'response' and st.retry(o.body))):
                break
            time.sleep(0.1)
        if o.kind == 'response':
            if st.recorded is not None:
                learn_pairs(t, st.recorded, o.body)
            for var, fn in st.learn.items():
                try:
                    t.vars[var] = fn(o.body)
                except (KeyError, IndexError, TypeError):
                    pass
            settle(t, st.api, st.version, body, o.body)
        return o

    def _run_lane(self, t, steps):
        return [self._play(t, st) for st in steps]

    def _run_group(self, sc, group, ts, own):
        """Plays a step, or a concurrent group: the steps of one connection
        in order, the connections at once, both brokers at once."""
        if group[0].wait and not group[0].concurrent:
            time.sleep(group[0].wait)
        lanes = {}
        for st in group:
            lanes.setdefault(st.conn, []).append(st)
        jobs = {(conn, n): self.pool.submit(self._run_lane, t, steps)
                for conn, steps in lanes.items() for n, t in ts.items()}
        got = {}
        for (conn, n), job in jobs.items():
            for st, o in zip(lanes[conn], job.result()):
                got[(id(st), n)] = o
        found = []
        for st in group:
            outs = {n: got[(id(st), n)] for n in ts}
            self.steps_run += 1
            if st.compare:
                found += self.compare_outcomes(sc.name, st, outs, ts, own)
        return found

    def compare_outcomes(self, scname, st, outs, ts, own):
        k, s = outs['kafka'], outs['spool']
        self.versions_seen.add((st.api, st.version))
        mk = lambda path, a, b: Diff(scname, st.name, st.api, st.version, path, a, b)  # noqa: E731
        if k.kind != 'response' or s.kind != 'response':
            if k.kind == s.kind:
                return []
            desc = {'closed': CLOSED, 'none': NO_ANSWER}
            return [self._classify(mk('<outcome>', desc.get(k.kind, '%s: %s' % (k.kind, k.error)),
                                      desc.get(s.kind, '%s: %s' % (s.kind, s.error))))]
        found = []
        kn = normalise(st.api, st.version, k.body, ts['kafka'], own)
        sn = normalise(st.api, st.version, s.body, ts['spool'], own)
        for path, a, b in compare(kn, sn):
            found.append(self._classify(mk(path, a, b)))
        return found

    def _classify(self, d):
        gp = generic_path(d.path)
        g = Diff(d.scenario, d.step, d.api, d.version, gp, d.kafka, d.spool)
        for kn in KNOWN:
            if kn.matches(g):
                d.known = kn
                break
        return d

    def unknown(self):
        return [d for d in self.diffs if d.known is None]

    def report(self):
        lines = []
        for d in self.diffs:
            lines.append(('known    ' if d.known else 'UNKNOWN  ') + str(d))
        return '\n'.join(lines)

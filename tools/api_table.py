#!/usr/bin/env python3
"""The table of Kafka APIs in docs/PROTOCOL.md: for every client API of
Kafka 4.3's schemas, the versions Spool serves (src/broker/api.c) beside
Kafka 4.3's (kafka-protocol/message/) and the oldest any Kafka served
(message-legacy/).  Generated, so it cannot drift from the code:

  tools/api_table.py SCHEMAS docs/PROTOCOL.md           rewrite the table
  tools/api_table.py SCHEMAS docs/PROTOCOL.md --check   fail if it differs

The table sits between the BEGIN/END markers of the file; the rest of the
file is prose written by hand.
"""
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BEGIN = '<!-- BEGIN api table (tools/api_table.py) -->'
END = '<!-- END api table -->'


def load(path):
    return json.loads(re.sub(r'//.*', '', path.read_text()))


def ranges(d):
    """{key: (name, lo, hi, listeners)} of the requests in directory d."""
    out = {}
    for p in sorted(d.glob('*Request.json')):
        j = load(p)
        lo, _, hi = j['validVersions'].partition('-')
        out[j['apiKey']] = (j['name'][:-len('Request')], int(lo), int(hi or lo), j.get('listeners', []))
    return out


def spool_ranges():
    src = (REPO / 'src' / 'broker' / 'api.c').read_text()
    norm = lambda n: n.replace('_', '').upper()                       # noqa: E731
    return {norm(name): (int(lo), int(hi))
            for name, lo, hi in re.findall(r'\{\s*SP_API_([A-Z_]+),\s*(\d+),\s*(\d+),', src)}


def vr(lo, hi):
    return '%d' % lo if lo == hi else '%d-%d' % (lo, hi)


def table(schemas):
    kafka = ranges(schemas / 'message')
    legacy = ranges(schemas / 'message-legacy')
    spool = spool_ranges()
    rows = ['| key | API | Spool | Kafka 4.3 | oldest Kafka | note |', '|---:|---|---|---|---|---|']
    for key in sorted(kafka):
        name, klo, khi, listeners = kafka[key]
        if 'broker' not in listeners:
            continue  # controller-only and inter-broker RPCs
        old = legacy.get(key)
        olo = min(klo, old[1]) if old else klo
        s = spool.get(name.upper())
        notes = []
        if s and s[0] < klo:
            notes.append('below Kafka 4.3: %s (KIP-896)' % vr(s[0], klo - 1))
        if s and s[1] < khi:
            notes.append('newer not yet: %s' % vr(s[1] + 1, khi))
        rows.append('| %d | %s | %s | %s | %s | %s |' % (key, name, vr(*s) if s else '-', vr(klo, khi),
                                                          '%d' % olo, '; '.join(notes)))
    n = sum(1 for k in kafka if 'broker' in kafka[k][3] and kafka[k][0].upper() in spool)
    rows.append('')
    rows.append('Spool serves %d of the %d APIs a Kafka 4.3 broker listener answers.' %
                (n, sum(1 for k in kafka if 'broker' in kafka[k][3])))
    return '\n'.join(rows)


def main(argv):
    check = '--check' in argv
    args = [a for a in argv if a != '--check']
    if len(args) != 2:
        sys.exit(__doc__)
    schemas, doc = Path(args[0]), Path(args[1])
    text = doc.read_text()
    if BEGIN not in text or END not in text:
        sys.exit('%s: no table markers' % doc)
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    new = head + BEGIN + '\n' + table(schemas) + '\n' + END + tail
    if check:
        if new != text:
            sys.exit('%s: the API table differs from src/broker/api.c and the schemas: run make api-table' % doc)
        print('api-table: %s matches' % doc)
        return
    doc.write_text(new)


if __name__ == '__main__':
    main(sys.argv[1:])

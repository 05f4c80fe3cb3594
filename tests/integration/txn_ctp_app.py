#!/usr/bin/env python3
"""A consume-transform-produce application with confluent-kafka's
transactions, run as a process of its own by test_0073_transactions.py
(so that the test can kill -9 it):

    txn_ctp_app.py BOOTSTRAP IN OUT GROUP TXN_ID PER_TXN SLEEP_S

It reads every partition of IN (assign(), read_committed, from the
group's committed offsets, else the earliest), and for each PER_TXN
records (or fewer) runs one transaction: produce b'out:' + value with
the same key to the same partition of OUT, flush (the records are in
the log of an open transaction), sleep SLEEP_S, send the consumer's
positions to the transaction for GROUP, commit.  It exits 0 once its
positions reach IN's end offsets (read at start: IN is written before).

On an abortable error it aborts and rewinds to the group's committed
offsets; on a retriable one it retries the call; on a fatal one it
exits 3.  Each step is one line on stdout:

    init <ms>
    flushed <n records> <txn number>
    committed <txn number> <positions as p:o,...>
    aborted <txn number> <error>
    retry <what> <error>
    done <transactions committed>
"""
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition


def say(*a):
    print(*a, flush=True)


def main(argv):
    bootstrap, tin, tout, group, txid, per_txn, sleep_s = argv
    per_txn, sleep_s = int(per_txn), float(sleep_s)
    t0 = time.monotonic()
    p = Producer({'bootstrap.servers': bootstrap, 'transactional.id': txid,
                  'transaction.timeout.ms': 20000, 'linger.ms': 5,
                  'message.timeout.ms': 20000,
                  'reconnect.backoff.ms': 50, 'reconnect.backoff.max.ms': 500})
    c = Consumer({'bootstrap.servers': bootstrap, 'group.id': group,
                  'isolation.level': 'read_committed', 'enable.auto.commit': False,
                  'auto.offset.reset': 'earliest', 'enable.partition.eof': False,
                  'reconnect.backoff.ms': 50, 'reconnect.backoff.max.ms': 500})
    while True:
        try:
            p.init_transactions(30)
            break
        except KafkaException as e:
            if e.args[0].retriable():
                say('retry init', e.args[0].name())
                continue
            raise
    say('init %d' % ((time.monotonic() - t0) * 1000))
    nparts = len(c.list_topics(tin, timeout=30).topics[tin].partitions)
    parts = list(range(nparts))
    ends = {q: c.get_watermark_offsets(TopicPartition(tin, q), timeout=30)[1] for q in parts}

    def rewind():
        # the group's committed offsets (require_stable: waits out an
        # open transaction's offsets), else the earliest
        while True:
            try:
                com = c.committed([TopicPartition(tin, q) for q in parts], timeout=30)
                break
            except KafkaException as e:
                say('retry committed', e.args[0].name())
                time.sleep(0.2)
        pos = {tp.partition: (tp.offset if tp.offset >= 0 else 0) for tp in com}
        c.assign([TopicPartition(tin, q, pos[q]) for q in parts])
        return pos

    pos = rewind()
    done = 0
    txn = 0
    while any(pos[q] < ends[q] for q in parts):
        msgs = [m for m in c.consume(num_messages=per_txn, timeout=1.0) if not m.error()]
        if not msgs:
            continue
        txn += 1
        try:
            p.begin_transaction()
            for m in msgs:
                while True:
                    try:
                        p.produce(tout, key=m.key(), value=b'out:' + m.value(), partition=m.partition())
                        break
                    except BufferError:
                        p.poll(0.05)
            p.flush(30)
            say('flushed %d %d' % (len(msgs), txn))
            if sleep_s:
                time.sleep(sleep_s)
            new = dict(pos)
            for m in msgs:
                new[m.partition()] = max(new[m.partition()], m.offset() + 1)
            offs = [TopicPartition(tin, q, new[q]) for q in parts]
            while True:
                try:
                    p.send_offsets_to_transaction(offs, c.consumer_group_metadata(), 30)
                    break
                except KafkaException as e:
                    if e.args[0].retriable():
                        say('retry send_offsets', e.args[0].name())
                        continue
                    raise
            while True:
                try:
                    p.commit_transaction(30)
                    break
                except KafkaException as e:
                    if e.args[0].retriable():
                        say('retry commit', e.args[0].name())
                        continue
                    raise
            pos = new
            done += 1
            say('committed %d %s' % (txn, ','.join('%d:%d' % (q, pos[q]) for q in parts)))
        except KafkaException as e:
            err = e.args[0]
            if err.fatal() or not err.txn_requires_abort():
                say('fatal %d %s %s' % (txn, err.name(), err.str()))
                return 3
            say('aborted %d %s' % (txn, err.name()))
            while True:
                try:
                    p.abort_transaction(30)
                    break
                except KafkaException as e2:
                    if e2.args[0].retriable():
                        say('retry abort', e2.args[0].name())
                        continue
                    raise
            pos = rewind()
    say('done %d' % done)
    c.close()
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))

package dev.spool.javatest;

import static dev.spool.javatest.Common.*;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ListOffsetsOptions;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.IsolationLevel;
import org.apache.kafka.common.TopicPartition;

/**
 * The Java transactional producer (kafka-clients 4.3.1), scenario
 * "txn_producer":
 *
 *   T1 commits 4 records on each of 3 partitions of OUT; T2 sends 3 per
 *   partition, flushes and aborts; T3 is a consume-transform-produce step:
 *   a read_committed consumer of group G reads the 10 records of IN (one
 *   partition, written before without a transaction), the producer sends
 *   "x:" + value to OUT partition 0 and sendOffsetsToTransaction(G), then
 *   commits.  T4 is opened (2 records on partition 1, flushed) and the
 *   end offsets are listed read_committed and read_uncommitted while it is
 *   open, then it commits.
 *
 *   Zombie: a second producer with the same transactional.id inits; the
 *   first one's next transaction (begin, send, commit) fails: the report
 *   names the exception (ProducerFencedException on Kafka 4.3).
 *
 * Reports the records read_committed and read_uncommitted per partition
 * ("offset:value"), the end offsets both ways (with T4 open and after),
 * the group's committed offsets, and the zombie's exception.
 */
final class Transactions {
    private Transactions() {}

    static final String OUT = NS + "-txn-out";
    static final String IN = NS + "-txn-in";
    static final String GROUP = NS + "-txn-g";
    static final String TXID = NS + "-txn-producer";

    static Properties txnProps(String bootstrap, String txid) {
        Properties p = producerProps(bootstrap);
        p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, txid);
        return p;
    }

    static Map<String, Object> endOffsets(Admin a, String topic, int parts, IsolationLevel iso) throws Exception {
        Map<TopicPartition, OffsetSpec> q = new HashMap<>();
        for (int i = 0; i < parts; i++)
            q.put(new TopicPartition(topic, i), OffsetSpec.latest());
        Map<String, Object> out = new TreeMap<>();
        a.listOffsets(q, new ListOffsetsOptions(iso)).all().get(TIMEOUT_S, TimeUnit.SECONDS)
                .forEach((tp, info) -> out.put(String.valueOf(tp.partition()), info.offset()));
        return out;
    }

    /** Every record of the topic from offset 0, read with the isolation
     *  level until each partition's position reaches want (its end). */
    static Map<String, Object> readAll(String bootstrap, String topic, int parts, String iso,
                                       Map<String, Object> want) throws Exception {
        Properties p = consumerProps(bootstrap, null);
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, iso);
        Map<String, Object> out = new TreeMap<>();
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(p)) {
            List<TopicPartition> tps = new ArrayList<>();
            for (int i = 0; i < parts; i++) {
                tps.add(new TopicPartition(topic, i));
                out.put(String.valueOf(i), new ArrayList<String>());
            }
            c.assign(tps);
            c.seekToBeginning(tps);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(TIMEOUT_S);
            while (System.nanoTime() < deadline) {
                boolean done = true;
                for (TopicPartition tp : tps)
                    if (c.position(tp) < ((Number) want.get(String.valueOf(tp.partition()))).longValue())
                        done = false;
                if (done)
                    break;
                for (ConsumerRecord<String, String> r : c.poll(POLL)) {
                    @SuppressWarnings("unchecked")
                    List<String> l = (List<String>) out.get(String.valueOf(r.partition()));
                    l.add(r.offset() + ":" + r.value());
                }
            }
        }
        return out;
    }

    static void send(KafkaProducer<String, String> p, String tag, int n, int... parts) throws Exception {
        for (int q : parts)
            for (int i = 0; i < n; i++)
                p.send(new ProducerRecord<>(OUT, q, tag + "-k" + i, tag + "-p" + q + "-" + i));
        p.flush();
    }

    static Map<String, Object> run(String bootstrap) throws Exception {
        Map<String, Object> r = new LinkedHashMap<>();
        try (Admin a = admin(bootstrap)) {
            createTopic(a, OUT, 3);
            createTopic(a, IN, 1);
            produce(bootstrap, IN, "in", 0, 10);
            try (KafkaProducer<String, String> p = new KafkaProducer<>(txnProps(bootstrap, TXID))) {
                p.initTransactions();
                p.beginTransaction();
                send(p, "c1", 4, 0, 1, 2);
                p.commitTransaction();
                p.beginTransaction();
                send(p, "a2", 3, 0, 1, 2);
                p.abortTransaction();

                Properties cp = consumerProps(bootstrap, GROUP);
                cp.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
                try (KafkaConsumer<String, String> c = new KafkaConsumer<>(cp)) {
                    TopicPartition in0 = new TopicPartition(IN, 0);
                    c.assign(List.of(in0));
                    List<ConsumerRecord<String, String>> got = new ArrayList<>();
                    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(TIMEOUT_S);
                    while (got.size() < 10 && System.nanoTime() < deadline)
                        c.poll(POLL).forEach(got::add);
                    r.put("input_read", got.size());
                    p.beginTransaction();
                    for (ConsumerRecord<String, String> rec : got)
                        p.send(new ProducerRecord<>(OUT, 0, rec.key(), "x:" + rec.value()));
                    p.sendOffsetsToTransaction(Map.of(in0, new OffsetAndMetadata(c.position(in0))),
                            c.groupMetadata());
                    p.commitTransaction();
                }

                p.beginTransaction();
                send(p, "o4", 2, 1);
                r.put("open_end_offsets", endOffsets(a, OUT, 3, IsolationLevel.READ_UNCOMMITTED));
                r.put("open_lso", endOffsets(a, OUT, 3, IsolationLevel.READ_COMMITTED));
                p.commitTransaction();
            }
            Map<String, Object> hw = endOffsets(a, OUT, 3, IsolationLevel.READ_UNCOMMITTED);
            // the markers are written after EndTxn answers
            waitFor(10_000, () -> {
                try {
                    return endOffsets(a, OUT, 3, IsolationLevel.READ_COMMITTED)
                            .equals(endOffsets(a, OUT, 3, IsolationLevel.READ_UNCOMMITTED));
                } catch (Exception e) {
                    return false;
                }
            });
            hw = endOffsets(a, OUT, 3, IsolationLevel.READ_UNCOMMITTED);
            r.put("end_offsets", hw);
            r.put("lso", endOffsets(a, OUT, 3, IsolationLevel.READ_COMMITTED));
            r.put("read_committed", readAll(bootstrap, OUT, 3, "read_committed", hw));
            r.put("read_uncommitted", readAll(bootstrap, OUT, 3, "read_uncommitted", hw));
            Map<String, Object> committed = new TreeMap<>();
            for (Map.Entry<TopicPartition, OffsetAndMetadata> e : a.listConsumerGroupOffsets(GROUP)
                    .partitionsToOffsetAndMetadata().get(TIMEOUT_S, TimeUnit.SECONDS).entrySet())
                committed.put(e.getKey().toString(), e.getValue() == null ? null : e.getValue().offset());
            r.put("group_offsets", committed);

            // zombie fencing
            String zid = TXID + "-zombie";
            KafkaProducer<String, String> z = new KafkaProducer<>(txnProps(bootstrap, zid));
            KafkaProducer<String, String> b = new KafkaProducer<>(txnProps(bootstrap, zid));
            try {
                z.initTransactions();
                z.beginTransaction();
                z.send(new ProducerRecord<>(OUT, 2, "z", "zombie-1")).get(TIMEOUT_S, TimeUnit.SECONDS);
                b.initTransactions();
                String fenced = "none";
                try {
                    z.send(new ProducerRecord<>(OUT, 2, "z", "zombie-2"));
                    z.commitTransaction();
                } catch (Exception e) {
                    fenced = e.getClass().getSimpleName();
                }
                r.put("zombie_commit", fenced);
                b.beginTransaction();
                b.send(new ProducerRecord<>(OUT, 2, "b", "fencer-1"));
                b.commitTransaction();
            } finally {
                z.close(java.time.Duration.ofSeconds(5));
                b.close(java.time.Duration.ofSeconds(5));
            }
            Map<String, Object> hw2 = endOffsets(a, OUT, 3, IsolationLevel.READ_UNCOMMITTED);
            waitFor(10_000, () -> {
                try {
                    return endOffsets(a, OUT, 3, IsolationLevel.READ_COMMITTED)
                            .equals(endOffsets(a, OUT, 3, IsolationLevel.READ_UNCOMMITTED));
                } catch (Exception e) {
                    return false;
                }
            });
            hw2 = endOffsets(a, OUT, 3, IsolationLevel.READ_UNCOMMITTED);
            r.put("after_zombie_end_offsets", hw2);
            @SuppressWarnings("unchecked")
            Map<String, Object> rc = readAll(bootstrap, OUT, 3, "read_committed", hw2);
            r.put("after_zombie_partition2", rc.get("2"));
        }
        return r;
    }

    /**
     * Scenario "txn_chaos" (run while the test's proxy cuts connections):
     * 100 transactions of 30 records over 3 partitions of NS-txn-chaos
     * (10 ms between the sends and the commit); an
     * abortable failure aborts and redoes the transaction, a timeout of
     * commitTransaction retries it, anything else is fatal and reported.
     * Then every record is read back read_committed: each of the 900 must
     * be there once, each transaction's in its order per partition.
     * (Records "t<k>-<i>", 3000 in all.)
     */
    static Map<String, Object> chaos(String bootstrap) throws Exception {
        final String topic = NS + "-txn-chaos";
        final int txns = 100, per = 30;
        Map<String, Object> r = new LinkedHashMap<>();
        List<String> fatal = new ArrayList<>();
        int redone = 0, commitRetries = 0;
        try (Admin a = admin(bootstrap)) {
            try {
                createTopic(a, topic, 3);
            } catch (java.util.concurrent.ExecutionException e) {
                // a retry of a CreateTopics whose answer the proxy cut
                if (!(e.getCause() instanceof org.apache.kafka.common.errors.TopicExistsException))
                    throw e;
            }
            Properties pp = txnProps(bootstrap, NS + "-txn-chaos-p");
            pp.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "120000");
            pp.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
            pp.put(ProducerConfig.RETRY_BACKOFF_MS_CONFIG, "20");
            pp.put(ProducerConfig.RECONNECT_BACKOFF_MS_CONFIG, "20");
            pp.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "60000");
            try (KafkaProducer<String, String> p = new KafkaProducer<>(pp)) {
                p.initTransactions();
                outer:
                for (int k = 0; k < txns; k++) {
                    for (int attempt = 0; ; attempt++) {
                        if (attempt == 10) {
                            fatal.add("txn " + k + ": 10 attempts");
                            break outer;
                        }
                        try {
                            p.beginTransaction();
                            for (int i = 0; i < per; i++)
                                p.send(new ProducerRecord<>(topic, i % 3, "t" + k, "t" + k + "-" + i));
                            Thread.sleep(10);
                            for (int c = 0; ; c++) {
                                try {
                                    p.commitTransaction();
                                    break;
                                } catch (org.apache.kafka.common.errors.TimeoutException e) {
                                    commitRetries++;
                                    if (c == 5)
                                        throw e;
                                }
                            }
                            break;
                        } catch (org.apache.kafka.common.errors.ProducerFencedException
                                 | org.apache.kafka.common.errors.OutOfOrderSequenceException
                                 | org.apache.kafka.common.errors.UnsupportedVersionException
                                 | org.apache.kafka.common.errors.AuthorizationException
                                 | org.apache.kafka.common.errors.InvalidTxnStateException
                                 | IllegalStateException e) {
                            fatal.add("txn " + k + ": " + e);
                            break outer;
                        } catch (org.apache.kafka.common.KafkaException e) {
                            redone++;
                            try {
                                p.abortTransaction();
                            } catch (Exception e2) {
                                fatal.add("txn " + k + " abort: " + e2 + " after " + e);
                                break outer;
                            }
                        }
                    }
                }
            }
            r.put("fatal", fatal);
            Map<String, Object> hw = endOffsets(a, topic, 3, IsolationLevel.READ_UNCOMMITTED);
            waitFor(20_000, () -> {
                try {
                    return endOffsets(a, topic, 3, IsolationLevel.READ_COMMITTED)
                            .equals(endOffsets(a, topic, 3, IsolationLevel.READ_UNCOMMITTED));
                } catch (Exception e) {
                    return false;
                }
            });
            hw = endOffsets(a, topic, 3, IsolationLevel.READ_UNCOMMITTED);
            r.put("lso_is_hw", endOffsets(a, topic, 3, IsolationLevel.READ_COMMITTED).equals(hw));
            Map<String, Object> got = readAll(bootstrap, topic, 3, "read_committed", hw);
            Map<String, Integer> seen = new TreeMap<>();
            List<String> order = new ArrayList<>();
            for (int q = 0; q < 3; q++) {
                @SuppressWarnings("unchecked")
                List<String> l = (List<String>) got.get(String.valueOf(q));
                List<String> vals = new ArrayList<>();
                for (String ov : l) {
                    String v = ov.substring(ov.indexOf(':') + 1);
                    seen.merge(v, 1, Integer::sum);
                    vals.add(v);
                }
                List<String> want = new ArrayList<>();
                for (int k = 0; k < txns; k++)
                    for (int i = q; i < per; i += 3)
                        want.add("t" + k + "-" + i);
                if (!vals.equals(want))
                    order.add("partition " + q + ": " + vals.size() + " records, want " + want.size());
            }
            List<String> dup = new ArrayList<>(), missing = new ArrayList<>();
            for (int k = 0; k < txns; k++)
                for (int i = 0; i < per; i++) {
                    Integer n = seen.get("t" + k + "-" + i);
                    if (n == null)
                        missing.add("t" + k + "-" + i);
                    else if (n > 1)
                        dup.add("t" + k + "-" + i);
                }
            r.put("records", seen.size());
            r.put("duplicates", dup.size() > 10 ? dup.subList(0, 10) : dup);
            r.put("missing", missing.size() > 10 ? missing.subList(0, 10) : missing);
            r.put("order", order);
            r.put("redone", redone);
            r.put("commit_retries", commitRetries);
        }
        return r;
    }
}

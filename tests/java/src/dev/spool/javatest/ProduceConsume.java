package dev.spool.javatest;

import static dev.spool.javatest.Common.*;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeaders;

/**
 * The Java producer and consumer: records sent with every compression codec
 * (keys, null keys on named partitions, a null value, headers, explicit
 * timestamps, one 300 KB value) come back byte for byte at the offsets the
 * producer was told, through a plain consumer and through a read_committed
 * one with tiny fetch sizes; beginning/end offsets and offsetsForTimes.
 */
final class ProduceConsume {
    private ProduceConsume() {}

    static final long BASE_TS = 1_700_000_000_000L;

    /** One record as sent, and where the broker put it. */
    static final class Sent {
        final ProducerRecord<String, String> rec;
        RecordMetadata md;

        Sent(ProducerRecord<String, String> rec) {
            this.rec = rec;
        }
    }

    static String describe(String key, String value, Iterable<Header> headers, long ts) {
        StringBuilder sb = new StringBuilder();
        sb.append(key).append('|').append(value == null ? "<null>" : value.length() > 64
                ? value.substring(0, 16) + "...(" + value.length() + ")" + value.hashCode() : value);
        for (Header h : headers)
            sb.append('|').append(h.key()).append('=')
              .append(h.value() == null ? "<null>" : new String(h.value(), StandardCharsets.UTF_8));
        sb.append("|ts=").append(ts);
        return sb.toString();
    }

    static Map<String, Object> run(String bootstrap) throws Exception {
        Map<String, Object> r = new LinkedHashMap<>();
        String topic = NS + "-pc";
        try (Admin a = admin(bootstrap)) {
            createTopic(a, topic, 3);
        }
        List<Sent> sent = new ArrayList<>();
        int seq = 0;
        String big = "x".repeat(300_000);
        for (String codec : List.of("none", "gzip", "snappy", "lz4", "zstd")) {
            Properties pp = producerProps(bootstrap);
            pp.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, codec);
            List<Sent> mine = new ArrayList<>();
            List<Future<RecordMetadata>> fs = new ArrayList<>();
            try (KafkaProducer<String, String> p = new KafkaProducer<>(pp)) {
                for (int i = 0; i < 60; i++, seq++) {
                    RecordHeaders h = new RecordHeaders();
                    h.add("codec", codec.getBytes(StandardCharsets.UTF_8));
                    h.add("seq", Integer.toString(seq).getBytes(StandardCharsets.UTF_8));
                    if (i % 10 == 0)
                        h.add("empty", null);
                    String key = i % 9 == 8 ? null : "k" + (i % 7);
                    Integer part = key == null ? Integer.valueOf(i % 3) : null;
                    String value = i == 30 ? null : codec + "-" + i + "-\u00e9\u2603";
                    mine.add(new Sent(new ProducerRecord<>(topic, part, BASE_TS + seq * 10L, key, value, h)));
                }
                if (codec.equals("none") || codec.equals("zstd")) {
                    mine.add(new Sent(new ProducerRecord<>(topic, 1, BASE_TS + seq * 10L, "big", big)));
                    seq++;
                }
                for (Sent s : mine)
                    fs.add(p.send(s.rec));
                p.flush();
            }
            for (int i = 0; i < mine.size(); i++)
                mine.get(i).md = fs.get(i).get(TIMEOUT_S, TimeUnit.SECONDS);
            sent.addAll(mine);
        }
        r.put("sent", sent.size());
        List<String> placement = new ArrayList<>();
        Map<Integer, Long> next = new HashMap<>();
        boolean contiguous = true;
        for (Sent s : sent) {
            placement.add(s.md.partition() + ":" + s.md.offset());
            long want = next.getOrDefault(s.md.partition(), 0L);
            contiguous &= s.md.offset() == want;
            next.put(s.md.partition(), want + 1);
        }
        r.put("placement", placement);
        r.put("offsets_contiguous_from_0", contiguous);

        List<TopicPartition> tps = List.of(new TopicPartition(topic, 0), new TopicPartition(topic, 1),
                new TopicPartition(topic, 2));
        r.put("plain", consumeAll(bootstrap, tps, sent, new Properties()));
        Properties small = new Properties();
        small.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        small.put(ConsumerConfig.MAX_PARTITION_FETCH_BYTES_CONFIG, "512");
        small.put(ConsumerConfig.FETCH_MAX_BYTES_CONFIG, "1024");
        small.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "7");
        r.put("read_committed_small_fetches", consumeAll(bootstrap, tps, sent, small));

        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(consumerProps(bootstrap, null))) {
            Map<String, Object> offs = new LinkedHashMap<>();
            for (Map.Entry<TopicPartition, Long> e : c.beginningOffsets(tps).entrySet())
                offs.put("begin-" + e.getKey().partition(), e.getValue());
            for (Map.Entry<TopicPartition, Long> e : c.endOffsets(tps).entrySet())
                offs.put("end-" + e.getKey().partition(), e.getValue());
            Map<TopicPartition, Long> q = new HashMap<>();
            for (TopicPartition tp : tps)
                q.put(tp, BASE_TS + 1500);
            for (Map.Entry<TopicPartition, OffsetAndTimestamp> e : c.offsetsForTimes(q).entrySet())
                offs.put("time-" + e.getKey().partition(), e.getValue() == null ? null
                        : e.getValue().offset() + "@" + e.getValue().timestamp());
            for (TopicPartition tp : tps)
                q.put(tp, BASE_TS + 1_000_000);
            for (Map.Entry<TopicPartition, OffsetAndTimestamp> e : c.offsetsForTimes(q).entrySet())
                offs.put("future-" + e.getKey().partition(), e.getValue() == null ? null : e.getValue().offset());
            c.assign(tps);
            c.seekToEnd(tps);
            for (TopicPartition tp : tps)
                offs.put("position-after-seekToEnd-" + tp.partition(), c.position(tp));
            r.put("offsets", sorted(offs));
        }
        return r;
    }

    /** Reads every partition from the beginning until it has as many records
     *  as were sent (or 30 s pass); compares each with what was sent there. */
    static Map<String, Object> consumeAll(String bootstrap, List<TopicPartition> tps, List<Sent> sent,
                                          Properties extra) throws Exception {
        Map<String, Sent> byPos = new HashMap<>();
        for (Sent s : sent)
            byPos.put(s.md.partition() + ":" + s.md.offset(), s);
        Properties p = consumerProps(bootstrap, null);
        p.putAll(extra);
        Map<String, Object> r = new LinkedHashMap<>();
        List<String> mismatches = new ArrayList<>();
        int got = 0, polls = 0;
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(p)) {
            c.assign(tps);
            c.seekToBeginning(tps);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(TIMEOUT_S);
            while (got < sent.size() && System.nanoTime() < deadline) {
                polls++;
                for (ConsumerRecord<String, String> rec : c.poll(POLL)) {
                    got++;
                    Sent s = byPos.get(rec.partition() + ":" + rec.offset());
                    String have = describe(rec.key(), rec.value(), rec.headers(), rec.timestamp());
                    String want = s == null ? "<nothing sent there>"
                            : describe(s.rec.key(), s.rec.value(), s.rec.headers(), s.rec.timestamp());
                    if (!have.equals(want) || rec.timestampType().id != 0)
                        mismatches.add(rec.partition() + ":" + rec.offset() + " got " + have + " "
                                + rec.timestampType() + " want " + want);
                }
            }
        }
        r.put("consumed", got);
        r.put("mismatches", mismatches.size() > 10 ? mismatches.subList(0, 10) : mismatches);
        if (extra.containsKey(ConsumerConfig.FETCH_MAX_BYTES_CONFIG))   // small fetches: many polls
            r.put("more_than_one_poll", polls > 1);
        return r;
    }
}

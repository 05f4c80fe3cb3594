package dev.spool.javatest;

import static dev.spool.javatest.Common.*;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * The Java producer with its defaults: nothing set but the bootstrap and
 * the serializers, so idempotence is on and acks=all (Kafka 3.0+'s
 * defaults, reported as the producer resolved them).  100,000 records
 * round-robin to 3 partitions, values "p&lt;partition&gt;-&lt;n&gt;" with n
 * counting per partition; then every partition is read from 0 to its end
 * and each record must be at offset n (so each is there once, in the
 * order sent) and have been acknowledged at that offset.  Scenario
 * idempotent_defaults (tests/integration/test_0070_idempotence.py runs it
 * through a proxy that cuts the producer's connections).
 */
final class Idempotence {
    private Idempotence() {}

    static final int RECORDS = 100_000;
    static final int PARTITIONS = 3;

    static Map<String, Object> run(String bootstrap) throws Exception {
        Map<String, Object> r = new LinkedHashMap<>();
        String topic = NS + "-idem-defaults";
        r.put("topic", topic);
        try (Admin a = admin(bootstrap)) {
            createTopic(a, topic, PARTITIONS);
        }
        Properties pp = new Properties();
        pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        pp.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        pp.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        ProducerConfig resolved = new ProducerConfig(pp);
        Map<String, Object> conf = new LinkedHashMap<>();
        conf.put("enable.idempotence", resolved.getBoolean(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG));
        conf.put("acks", resolved.getString(ProducerConfig.ACKS_CONFIG));
        conf.put("max.in.flight", resolved.getInt(ProducerConfig.MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION));
        r.put("config", conf);

        int[] perPart = new int[PARTITIONS];
        long[][] acked = new long[PARTITIONS][];
        for (int p = 0; p < PARTITIONS; p++)
            acked[p] = new long[RECORDS / PARTITIONS + (p < RECORDS % PARTITIONS ? 1 : 0)];
        for (long[] a : acked)
            java.util.Arrays.fill(a, -2);
        List<String> errors = new ArrayList<>();
        AtomicLong ackCount = new AtomicLong();
        try (KafkaProducer<String, String> p = new KafkaProducer<>(pp)) {
            for (int i = 0; i < RECORDS; i++) {
                int part = i % PARTITIONS;
                int n = perPart[part]++;
                p.send(new ProducerRecord<>(topic, part, null, "p" + part + "-" + n), (md, e) -> {
                    if (e != null) {
                        synchronized (errors) {
                            if (errors.size() < 10)
                                errors.add(part + "/" + n + ": " + e);
                        }
                    } else {
                        acked[part][n] = md.offset();
                        ackCount.incrementAndGet();
                    }
                });
            }
            p.flush();
        }
        r.put("sent", RECORDS);
        r.put("acked", ackCount.get());
        r.put("send_errors", errors);
        boolean atSeq = true;
        for (int p = 0; p < PARTITIONS; p++)
            for (int n = 0; n < acked[p].length; n++)
                atSeq &= acked[p][n] == n;
        r.put("acked_at_offset_equal_sequence", atSeq);

        Properties cp = consumerProps(bootstrap, null);
        cp.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "5000");
        List<TopicPartition> tps = new ArrayList<>();
        for (int p = 0; p < PARTITIONS; p++)
            tps.add(new TopicPartition(topic, p));
        List<String> outOfPlace = new ArrayList<>();
        long consumed = 0;
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(cp)) {
            Map<TopicPartition, Long> ends = c.endOffsets(tps);
            List<Long> endList = new ArrayList<>();
            for (TopicPartition tp : tps)
                endList.add(ends.get(tp));
            r.put("end_offsets", endList);
            c.assign(tps);
            c.seekToBeginning(tps);
            Map<Integer, Long> next = new HashMap<>();
            long deadline = System.currentTimeMillis() + 120_000;
            while (consumed < RECORDS && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> rec : c.poll(POLL)) {
                    consumed++;
                    long want = next.getOrDefault(rec.partition(), 0L);
                    String v = "p" + rec.partition() + "-" + rec.offset();
                    if (rec.offset() != want || !v.equals(rec.value())) {
                        if (outOfPlace.size() < 10)
                            outOfPlace.add(rec.partition() + "@" + rec.offset() + " (want " + want + "): "
                                    + rec.value());
                    }
                    next.put(rec.partition(), rec.offset() + 1);
                }
            }
        }
        r.put("consumed", consumed);
        r.put("out_of_place", outOfPlace);
        return r;
    }
}

package dev.spool.javatest;

import static dev.spool.javatest.Common.*;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ListOffsetsResult.ListOffsetsResultInfo;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.serialization.LongDeserializer;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.CloseOptions;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;

/**
 * A Kafka Streams word count (at_least_once): lines -> words -> groupBy
 * word (a repartition topic) -> count in a RocksDB state store (a
 * compacted changelog topic) -> counts to an output topic.  Phase one
 * counts 400 lines; the application is then stopped, its local state
 * wiped, and a new instance restores the store from the changelog and
 * counts 200 more lines.  Reports the final counts from the output topic
 * and from the changelog, the expected counts, the internal topics and
 * their configurations, whether consumed repartition records were purged
 * (Streams' DeleteRecords), and the group's committed offsets.
 */
final class WordCount {
    /** The application's names and processing guarantee: at_least_once
     *  ("wordcount", the original names) or exactly_once_v2
     *  ("wordcount_eos", names of its own). */
    final String APP, IN, OUT, guarantee;

    WordCount(String app, String in, String out, String guarantee) {
        APP = NS + "-" + app;
        IN = NS + "-" + in;
        OUT = NS + "-" + out;
        this.guarantee = guarantee;
    }

    static final WordCount AT_LEAST_ONCE = new WordCount("wordcount", "wc-lines", "wc-counts",
                                                         StreamsConfig.AT_LEAST_ONCE);
    static final WordCount EXACTLY_ONCE = new WordCount("eos-wordcount", "wc-eos-lines", "wc-eos-counts",
                                                        StreamsConfig.EXACTLY_ONCE_V2);
    static final String[] VOCAB = {"spool", "kafka", "log", "segment", "offset", "broker", "group", "fsync",
                                   "batch", "record", "stream", "table", "topic", "partition", "leader"};

    /** Line i of the input: 1 to 8 words chosen by a fixed LCG. */
    static String line(int i) {
        long x = 0x9E3779B97F4A7C15L * (i + 1);
        int n = 1 + (int) ((x >>> 33) % 8);
        StringBuilder sb = new StringBuilder();
        for (int w = 0; w < n; w++) {
            x = x * 6364136223846793005L + 1442695040888963407L;
            if (w > 0)
                sb.append(w % 3 == 0 ? ", " : " ");
            String word = VOCAB[(int) ((x >>> 33) % VOCAB.length)];
            sb.append(w == 0 ? word.toUpperCase() : word);
        }
        return sb.toString();
    }

    KafkaStreams start(String bootstrap, Path stateDir) {
        StreamsBuilder b = new StreamsBuilder();
        b.stream(IN, Consumed.with(Serdes.String(), Serdes.String()))
         .flatMapValues(v -> Arrays.asList(v.toLowerCase().split("\\W+")))
         .filter((k, w) -> !w.isEmpty())
         .groupBy((k, w) -> w, Grouped.with("words", Serdes.String(), Serdes.String()))
         .count(Materialized.as("counts"))
         .toStream()
         .to(OUT, Produced.with(Serdes.String(), Serdes.Long()));
        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, APP);
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        // at_least_once (Streams' default) or exactly_once_v2; either way
        // the producers keep the producer's default, idempotence on
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, guarantee);
        p.put(StreamsConfig.STATE_DIR_CONFIG, stateDir.toString());
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, "200");
        p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, "0");
        // consumed repartition records are deleted (DeleteRecords) after
        // each commit rather than every 30 s
        p.put(StreamsConfig.REPARTITION_PURGE_INTERVAL_MS_CONFIG, "100");
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG), "500");
        KafkaStreams s = new KafkaStreams(b.build(), p);
        s.start();
        return s;
    }

    /** Closes the instance and leaves the group (Streams stays in it by
     *  default, and the next instance would wait out the session). */
    static void close(KafkaStreams s) {
        s.close(CloseOptions.groupMembershipOperation(CloseOptions.GroupMembershipOperation.LEAVE_GROUP)
                .withTimeout(Duration.ofSeconds(TIMEOUT_S)));
    }

    static Map<String, Long> expected(int lines) {
        Map<String, Long> m = new TreeMap<>();
        for (int i = 0; i < lines; i++)
            for (String w : line(i).toLowerCase().split("\\W+"))
                if (!w.isEmpty())
                    m.merge(w, 1L, Long::sum);
        return m;
    }

    void produceLines(String bootstrap, int from, int n) throws Exception {
        try (KafkaProducer<String, String> p = new KafkaProducer<>(producerProps(bootstrap))) {
            for (int i = from; i < from + n; i++)
                p.send(new ProducerRecord<>(IN, "line-" + i, line(i)));
            p.flush();
        }
    }

    /** The last value of every key in a topic, read (read_committed) from
     *  the beginning until it equals want or 60 s pass. */
    static Map<String, Long> lastValues(String bootstrap, String topic, Map<String, Long> want) throws Exception {
        return lastValues(bootstrap, topic, want, null);
    }

    /** The same, and every value of each key in order into seqs. */
    static Map<String, Long> lastValues(String bootstrap, String topic, Map<String, Long> want,
                                        Map<String, List<Long>> seqs) throws Exception {
        Properties p = consumerProps(bootstrap, null);
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, LongDeserializer.class.getName());
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        Map<String, Long> last = new TreeMap<>();
        try (KafkaConsumer<String, Long> c = new KafkaConsumer<>(p)) {
            List<TopicPartition> tps = new ArrayList<>();
            c.partitionsFor(topic).forEach(pi -> tps.add(new TopicPartition(topic, pi.partition())));
            c.assign(tps);
            c.seekToBeginning(tps);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (!last.equals(want) && System.nanoTime() < deadline)
                for (ConsumerRecord<String, Long> rec : c.poll(POLL)) {
                    last.put(rec.key(), rec.value());
                    if (seqs != null)
                        seqs.computeIfAbsent(rec.key(), k -> new ArrayList<>()).add(rec.value());
                }
        }
        return last;
    }

    /** The records deleted from the repartition topic's start (its two
     *  partitions' earliest offsets); -1 if they cannot be read. */
    static long purged(Admin a, String repartition) {
        long n = 0;
        try {
            for (ListOffsetsResultInfo info : a.listOffsets(Map.of(
                    new TopicPartition(repartition, 0), OffsetSpec.earliest(),
                    new TopicPartition(repartition, 1), OffsetSpec.earliest()))
                    .all().get(TIMEOUT_S, TimeUnit.SECONDS).values())
                n += info.offset();
        } catch (Exception e) {
            return -1;
        }
        return n;
    }

    Map<String, Object> run(String bootstrap, Path work) throws Exception {
        Map<String, Object> r = new LinkedHashMap<>();
        String changelog = APP + "-counts-changelog";
        String repartition = APP + "-words-repartition";
        try (Admin a = admin(bootstrap)) {
            createTopic(a, IN, 2);
            createTopic(a, OUT, 1);
            produceLines(bootstrap, 0, 400);
            Map<String, Long> want1 = expected(400);
            KafkaStreams s = start(bootstrap, Files.createDirectories(work.resolve("state-1")));
            Map<String, Long> got1;
            try {
                got1 = lastValues(bootstrap, OUT, want1);
                r.put("phase1_state", s.state().toString());
            } finally {
                close(s);
            }
            r.put("phase1_counts_match", got1.equals(want1));
            r.put("phase1_counts", got1);

            // A new instance with no local state: the store comes back from
            // the changelog, and the counts go on from there.
            produceLines(bootstrap, 400, 200);
            Map<String, Long> want2 = expected(600);
            s = start(bootstrap, Files.createDirectories(work.resolve("state-2")));
            Map<String, Long> got2;
            try {
                got2 = lastValues(bootstrap, OUT, want2);
                r.put("phase2_state", s.state().toString());
                // Streams purges after a commit that follows the processing
                r.put("repartition_records_purged", waitFor(10_000, () -> purged(a, repartition) > 0));
            } finally {
                close(s);
            }
            r.put("final_counts_match", got2.equals(want2));
            r.put("final_counts", got2);
            r.put("expected_counts", want2);
            r.put("changelog_matches", lastValues(bootstrap, changelog, want2).equals(want2));
            if (!guarantee.equals(StreamsConfig.AT_LEAST_ONCE)) {
                // exactly once, without a store cache: each key's counts in
                // the output are 1, 2, ... its final count, each once
                Map<String, List<Long>> seqs = new TreeMap<>();
                lastValues(bootstrap, OUT, want2, seqs);
                List<String> bad = new ArrayList<>();
                for (Map.Entry<String, List<Long>> e : seqs.entrySet())
                    for (int i = 0; i < e.getValue().size(); i++)
                        if (e.getValue().get(i) != i + 1) {
                            bad.add(e.getKey() + "=" + e.getValue());
                            break;
                        }
                r.put("output_counts_each_once", bad);
            }

            Set<String> internal = new TreeSet<>();
            for (String n : a.listTopics().names().get(TIMEOUT_S, TimeUnit.SECONDS))
                if (n.startsWith(APP))
                    internal.add(n);
            r.put("internal_topics", internal);
            Map<String, Object> cfg = new TreeMap<>();
            for (String t : List.of(changelog, repartition)) {
                ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, t);
                Config c = a.describeConfigs(List.of(res)).all().get(TIMEOUT_S, TimeUnit.SECONDS).get(res);
                TopicDescription d = a.describeTopics(List.of(t)).allTopicNames().get(TIMEOUT_S, TimeUnit.SECONDS)
                        .get(t);
                cfg.put(t, "partitions=" + d.partitions().size()
                        + " cleanup.policy=" + c.get("cleanup.policy").value()
                        + " retention.ms=" + c.get("retention.ms").value());
            }
            r.put("internal_topic_configs", cfg);
            Map<String, Object> committed = new TreeMap<>();
            for (Map.Entry<TopicPartition, OffsetAndMetadata> e : a.listConsumerGroupOffsets(APP)
                    .partitionsToOffsetAndMetadata().get(TIMEOUT_S, TimeUnit.SECONDS).entrySet())
                committed.put(e.getKey().toString(), e.getValue() == null ? null : e.getValue().offset());
            r.put("committed_input_total", committed.entrySet().stream()
                    .filter(e -> e.getKey().startsWith(IN + "-"))
                    .mapToLong(e -> (Long) e.getValue()).sum());
        }
        return r;
    }
}

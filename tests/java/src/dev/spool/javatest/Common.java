package dev.spool.javatest;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/** Client settings and small helpers shared by the scenarios. */
final class Common {
    private Common() {}

    static final long TIMEOUT_S = 30;

    /** The first word of every topic and group name (-Dspool.ns=...: to run
     *  the scenarios again against the same brokers by hand). */
    static final String NS = System.getProperty("spool.ns", "j");

    /** A producer's settings.  Idempotence keeps the producer's default
     *  (on since Kafka 3.0): the producer asks InitProducerId first and
     *  its batches carry a producer id and sequences. */
    static Properties producerProps(String bootstrap) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        return p;
    }

    static Properties consumerProps(String bootstrap, String group) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        if (group != null) {
            p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
            // Spool speaks the classic group protocol (JoinGroup/SyncGroup),
            // not KIP-848's ConsumerGroupHeartbeat; classic is 4.3's default
            // too, said here so that a change of default shows.
            p.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "classic");
        }
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        return p;
    }

    static Admin admin(String bootstrap) {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
        return Admin.create(p);
    }

    static void createTopic(Admin a, String name, int partitions) throws Exception {
        a.createTopics(List.of(new NewTopic(name, partitions, (short) 1))).all().get(TIMEOUT_S, TimeUnit.SECONDS);
    }

    /** Sends records (key "k<i>", value "<prefix>-<i>") and waits for every
     *  acknowledgement; returns the metadata in send order. */
    static List<RecordMetadata> produce(String bootstrap, String topic, String prefix, int from, int n)
            throws Exception {
        List<Future<RecordMetadata>> fs = new ArrayList<>();
        try (KafkaProducer<String, String> p = new KafkaProducer<>(producerProps(bootstrap))) {
            for (int i = from; i < from + n; i++)
                fs.add(p.send(new ProducerRecord<>(topic, "k" + i, prefix + "-" + i)));
            p.flush();
        }
        List<RecordMetadata> out = new ArrayList<>();
        for (Future<RecordMetadata> f : fs)
            out.add(f.get(TIMEOUT_S, TimeUnit.SECONDS));
        return out;
    }

    /** The simple name of the exception a future fails with, its cause's if
     *  wrapped (ExecutionException), or "ok". */
    static String outcome(Future<?> f) {
        try {
            f.get(TIMEOUT_S, TimeUnit.SECONDS);
            return "ok";
        } catch (ExecutionException e) {
            return e.getCause() == null ? e.getClass().getSimpleName() : e.getCause().getClass().getSimpleName();
        } catch (Exception e) {
            return e.getClass().getSimpleName();
        }
    }

    /** Waits until cond is true, polling every 50 ms; false after timeoutMs. */
    static boolean waitFor(long timeoutMs, BooleanSupplier cond) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
        while (System.nanoTime() < deadline) {
            if (cond.getAsBoolean())
                return true;
            Thread.sleep(50);
        }
        return cond.getAsBoolean();
    }

    static <K extends Comparable<K>, V> Map<K, V> sorted(Map<K, V> m) {
        return new TreeMap<>(m);
    }

    static List<Object> list(Object... xs) {
        return new ArrayList<>(List.of(xs));
    }

    static <T extends Comparable<T>> List<T> sortedList(Collection<T> c) {
        List<T> l = new ArrayList<>(c);
        l.sort(null);
        return l;
    }

    static final Duration POLL = Duration.ofMillis(100);
}

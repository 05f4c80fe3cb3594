package dev.spool.javatest;

import static dev.spool.javatest.Common.*;

import java.util.ArrayList;
import java.util.Collection;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;

/**
 * A consumer group of several Java consumers (classic protocol, one thread
 * each) with the given assignor: one member takes every partition, two
 * more join and the six partitions are split 2/2/2, one leaves and they
 * are split 3/3; records produced meanwhile are each consumed once
 * (commitSync after every poll and on revocation), and the committed
 * offsets end at the log end.  The AdminClient describes the group while
 * it is Stable and after it emptied.
 */
final class Groups {
    private Groups() {}

    static final int PARTITIONS = 6;

    /** One group member, polling in its own thread until stopped. */
    static final class Member implements Runnable {
        final String name;
        final KafkaConsumer<String, String> c;
        final String topic;
        final Map<String, AtomicInteger> seen;
        volatile Set<Integer> assignment = Set.of();
        volatile boolean stop;
        volatile Throwable failure;
        final Thread thread;

        Member(String bootstrap, String group, String assignor, String topic, String name,
               Map<String, AtomicInteger> seen) {
            Properties p = consumerProps(bootstrap, group);
            p.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, assignor);
            p.put(ConsumerConfig.CLIENT_ID_CONFIG, name);
            p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, "300");
            p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, "10000");
            p.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "50");
            this.c = new KafkaConsumer<>(p);
            this.name = name;
            this.topic = topic;
            this.seen = seen;
            this.thread = new Thread(this, "member-" + name);
        }

        @Override
        public void run() {
            try {
                c.subscribe(List.of(topic), new ConsumerRebalanceListener() {
                    @Override
                    public void onPartitionsRevoked(Collection<TopicPartition> parts) {
                        if (!parts.isEmpty())
                            c.commitSync();
                    }

                    @Override
                    public void onPartitionsAssigned(Collection<TopicPartition> parts) {}
                });
                while (!stop) {
                    boolean any = false;
                    for (ConsumerRecord<String, String> rec : c.poll(POLL)) {
                        any = true;
                        seen.computeIfAbsent(rec.partition() + ":" + rec.offset(), k -> new AtomicInteger())
                            .incrementAndGet();
                    }
                    if (any)
                        c.commitSync();
                    Set<Integer> a = new HashSet<>();
                    for (TopicPartition tp : c.assignment())
                        a.add(tp.partition());
                    assignment = a;
                }
            } catch (Throwable t) {
                failure = t;
            } finally {
                c.close();
            }
        }

        void stopAndJoin() throws InterruptedException {
            stop = true;
            thread.join(TimeUnit.SECONDS.toMillis(TIMEOUT_S));
        }
    }

    /** True when the members' assignments are disjoint, cover every
     *  partition, and have the sizes wanted (sorted). */
    static boolean split(List<Member> ms, List<Integer> sizes) {
        Set<Integer> all = new HashSet<>();
        List<Integer> have = new ArrayList<>();
        for (Member m : ms) {
            Set<Integer> a = m.assignment;
            have.add(a.size());
            for (int p : a)
                if (!all.add(p))
                    return false;
        }
        have.sort(null);
        return all.size() == PARTITIONS && have.equals(sizes);
    }

    static long committedSum(Admin a, String group) throws Exception {
        long sum = 0;
        for (OffsetAndMetadata om : a.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata()
                .get(TIMEOUT_S, TimeUnit.SECONDS).values())
            sum += om == null ? 0 : om.offset();
        return sum;
    }

    static Map<String, Object> describe(Admin a, String group) throws Exception {
        ConsumerGroupDescription d = a.describeConsumerGroups(List.of(group)).describedGroups().get(group)
                .get(TIMEOUT_S, TimeUnit.SECONDS);
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("state", d.groupState().toString());
        r.put("type", d.type().toString());
        r.put("simple", d.isSimpleConsumerGroup());
        r.put("assignor", d.partitionAssignor());
        List<String> members = new ArrayList<>();
        Set<Integer> covered = new HashSet<>();
        for (MemberDescription m : d.members()) {
            members.add(m.clientId() + " host=" + m.host() + " partitions=" + m.assignment().topicPartitions().size());
            for (TopicPartition tp : m.assignment().topicPartitions())
                covered.add(tp.partition());
            r.put("member_id_starts_with_client_id", m.consumerId().startsWith(m.clientId() + "-"));
        }
        members.sort(null);
        r.put("members", members);
        r.put("partitions_covered", covered.size());
        return r;
    }

    static Map<String, Object> run(String bootstrap, String assignorName, String assignorClass) throws Exception {
        Map<String, Object> r = new LinkedHashMap<>();
        String topic = NS + "-grp-" + assignorName;
        String group = NS + "-group-" + assignorName;
        Map<String, AtomicInteger> seen = new ConcurrentHashMap<>();
        List<Member> members = new ArrayList<>();
        try (Admin a = admin(bootstrap)) {
            createTopic(a, topic, PARTITIONS);
            produce(bootstrap, topic, "a", 0, 300);
            Member m1 = new Member(bootstrap, group, assignorClass, topic, "m1", seen);
            members.add(m1);
            m1.thread.start();
            r.put("one_member_takes_all", waitFor(20_000, () -> split(List.of(m1), List.of(6))));
            Member m2 = new Member(bootstrap, group, assignorClass, topic, "m2", seen);
            Member m3 = new Member(bootstrap, group, assignorClass, topic, "m3", seen);
            members.add(m2);
            members.add(m3);
            m2.thread.start();
            m3.thread.start();
            r.put("three_members_2_2_2", waitFor(30_000, () -> split(List.of(m1, m2, m3), List.of(2, 2, 2))));
            produce(bootstrap, topic, "b", 300, 300);
            r.put("consumed_600", waitFor(20_000, () -> seen.size() >= 600));
            r.put("committed_600", waitFor(10_000, () -> {
                try {
                    return committedSum(a, group) == 600;
                } catch (Exception e) {
                    return false;
                }
            }));
            r.put("describe_three", describe(a, group));

            m3.stopAndJoin();
            r.put("after_leave_3_3", waitFor(30_000, () -> split(List.of(m1, m2), List.of(3, 3))));
            produce(bootstrap, topic, "c", 600, 150);
            r.put("consumed_750", waitFor(20_000, () -> seen.size() >= 750));
            r.put("committed_750", waitFor(10_000, () -> {
                try {
                    return committedSum(a, group) == 750;
                } catch (Exception e) {
                    return false;
                }
            }));
            m1.stopAndJoin();
            m2.stopAndJoin();
            r.put("describe_empty", describe(a, group));
            int dups = 0;
            for (AtomicInteger n : seen.values())
                dups += n.get() - 1;
            r.put("distinct_consumed", seen.size());
            r.put("duplicates", dups);
            List<String> failures = new ArrayList<>();
            for (Member m : members)
                if (m.failure != null)
                    failures.add(m.name + ": " + m.failure);
            r.put("member_failures", failures);
        } finally {
            for (Member m : members)
                if (m.thread.isAlive())
                    m.stopAndJoin();
        }
        return r;
    }
}

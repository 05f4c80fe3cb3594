package dev.spool.javatest;

import static dev.spool.javatest.Common.*;

import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ConsumerGroupListing;
import org.apache.kafka.clients.admin.CreateTopicsOptions;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.DescribeConfigsOptions;
import org.apache.kafka.clients.admin.DescribeTopicsOptions;
import org.apache.kafka.clients.admin.GroupListing;
import org.apache.kafka.clients.admin.ListGroupsOptions;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.LogDirDescription;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.ReplicaInfo;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.config.ConfigResource;

/**
 * The AdminClient: topics (create, validate-only, errors, list, describe,
 * delete), partitions (createPartitions), configs (describe,
 * incrementalAlter: SET, DELETE, APPEND, SUBTRACT, bad values), records
 * (deleteRecords, listOffsets), the cluster (describeCluster,
 * describeLogDirs), and consumer groups (list, describe, offsets: list,
 * alter, delete; delete a group).
 */
final class AdminOps {
    private AdminOps() {}

    /** Topic keys whose value and source the scenario reports (not
     *  min.insync.replicas: Kafka's KRaft format sets it as a cluster-wide
     *  dynamic default, which makes its source differ by set-up). */
    static final String[] TOPIC_KEYS = {"retention.ms", "cleanup.policy", "max.message.bytes", "segment.bytes",
                                        "compression.type", "message.timestamp.type"};

    /** Value and source of each of TOPIC_KEYS ("value SOURCE [ro]"), their
     *  synonyms under "synonyms", and with all, the names of every key. */
    static Map<String, Object> topicConfigs(Admin a, String topic, boolean all) throws Exception {
        ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, topic);
        Config c = a.describeConfigs(List.of(res), new DescribeConfigsOptions().includeSynonyms(true))
                .all().get(TIMEOUT_S, TimeUnit.SECONDS).get(res);
        Map<String, Object> r = new TreeMap<>();
        Map<String, Object> syn = new TreeMap<>();
        for (String k : TOPIC_KEYS) {
            ConfigEntry e = c.get(k);
            r.put(k, e == null ? null : e.value() + " " + e.source() + (e.isReadOnly() ? " ro" : "")
                    + (e.isSensitive() ? " sensitive" : ""));
            syn.put(k, e == null ? null : synonyms(e));
        }
        r.put("synonyms", syn);
        if (all) {
            Set<String> names = new TreeSet<>();
            for (ConfigEntry e : c.entries())
                names.add(e.name());
            r.put("all_names", names);
        }
        return r;
    }

    static String synonyms(ConfigEntry e) {
        List<String> s = new ArrayList<>();
        for (ConfigEntry.ConfigSynonym y : e.synonyms())
            s.add(y.name() + ":" + y.source());
        return String.join(",", s);
    }

    static Object describeTopic(Admin a, String topic) throws Exception {
        TopicDescription d = a.describeTopics(List.of(topic), new DescribeTopicsOptions())
                .allTopicNames().get(TIMEOUT_S, TimeUnit.SECONDS).get(topic);
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("internal", d.isInternal());
        r.put("has_topic_id", d.topicId() != null && !d.topicId().toString().isEmpty());
        List<String> parts = new ArrayList<>();
        for (TopicPartitionInfo p : d.partitions())
            parts.add(p.partition() + " leader=" + (p.leader() == null ? "none" : p.leader().idString())
                    + " replicas=" + p.replicas().size() + " isr=" + p.isr().size());
        r.put("partitions", parts);
        return r;
    }

    static Map<String, Object> topics(String bootstrap) throws Exception {
        Map<String, Object> r = new LinkedHashMap<>();
        try (Admin a = admin(bootstrap)) {
            DescribeClusterResult dc = a.describeCluster();
            Collection<Node> nodes = dc.nodes().get(TIMEOUT_S, TimeUnit.SECONDS);
            Node controller = dc.controller().get(TIMEOUT_S, TimeUnit.SECONDS);
            String clusterId = dc.clusterId().get(TIMEOUT_S, TimeUnit.SECONDS);
            int node = nodes.iterator().next().id();
            Map<String, Object> cl = new LinkedHashMap<>();
            cl.put("nodes", nodes.size());
            cl.put("node_host", nodes.iterator().next().host());
            cl.put("controller_is_the_node", controller != null && controller.id() == node);
            cl.put("cluster_id_length", clusterId == null ? -1 : clusterId.length());
            r.put("describe_cluster", cl);

            NewTopic ta = new NewTopic(NS + "-adm-a", 2, (short) 1)
                    .configs(Map.of("retention.ms", "3600000", "max.message.bytes", "100000"));
            NewTopic tb = new NewTopic(NS + "-adm-b", 1, (short) 1);
            r.put("create", outcome(a.createTopics(List.of(ta, tb)).all()));
            r.put("create_again", outcome(a.createTopics(List.of(new NewTopic(NS + "-adm-a", 1, (short) 1))).all()));
            r.put("create_bad_name", outcome(a.createTopics(List.of(new NewTopic(NS + " adm bad", 1, (short) 1))).all()));
            r.put("create_zero_partitions",
                  outcome(a.createTopics(List.of(new NewTopic(NS + "-adm-zero", 0, (short) 1))).all()));
            r.put("create_replication_3",
                  outcome(a.createTopics(List.of(new NewTopic(NS + "-adm-rf3", 1, (short) 3))).all()));
            r.put("create_bad_config", outcome(a.createTopics(List.of(
                    new NewTopic(NS + "-adm-badcfg", 1, (short) 1).configs(Map.of("retention.ms", "soon")))).all()));
            r.put("create_validate_only", outcome(a.createTopics(List.of(new NewTopic(NS + "-adm-v", 1, (short) 1)),
                    new CreateTopicsOptions().validateOnly(true)).all()));
            Set<String> listed = new TreeSet<>();
            for (String n : a.listTopics().names().get(TIMEOUT_S, TimeUnit.SECONDS))
                if (n.startsWith(NS + "-adm"))
                    listed.add(n);
            r.put("list", listed);
            r.put("describe_a", describeTopic(a, NS + "-adm-a"));
            r.put("describe_missing", outcome(a.describeTopics(List.of(NS + "-adm-missing")).allTopicNames()));

            r.put("create_partitions_4", outcome(a.createPartitions(Map.of(NS + "-adm-a", NewPartitions.increaseTo(4))).all()));
            r.put("create_partitions_3",
                  outcome(a.createPartitions(Map.of(NS + "-adm-a", NewPartitions.increaseTo(3))).all()));
            r.put("create_partitions_missing",
                  outcome(a.createPartitions(Map.of(NS + "-adm-missing", NewPartitions.increaseTo(3))).all()));
            r.put("describe_a_after", describeTopic(a, NS + "-adm-a"));

            r.put("configs_a", topicConfigs(a, NS + "-adm-a", true));
            ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, NS + "-adm-a");
            Collection<AlterConfigOp> ops = List.of(
                    new AlterConfigOp(new ConfigEntry("retention.ms", "7200000"), AlterConfigOp.OpType.SET),
                    new AlterConfigOp(new ConfigEntry("max.message.bytes", null), AlterConfigOp.OpType.DELETE),
                    new AlterConfigOp(new ConfigEntry("cleanup.policy", "compact"), AlterConfigOp.OpType.APPEND),
                    new AlterConfigOp(new ConfigEntry("segment.bytes", "1048576"), AlterConfigOp.OpType.SET));
            r.put("incremental_alter", outcome(a.incrementalAlterConfigs(Map.of(res, ops)).all()));
            r.put("configs_a_altered", topicConfigs(a, NS + "-adm-a", false));
            r.put("incremental_subtract", outcome(a.incrementalAlterConfigs(Map.of(res, List.of(
                    new AlterConfigOp(new ConfigEntry("cleanup.policy", "compact"), AlterConfigOp.OpType.SUBTRACT))))
                    .all()));
            r.put("cleanup_policy_after_subtract", topicConfigs(a, NS + "-adm-a", false).get("cleanup.policy"));
            r.put("incremental_bad_value", outcome(a.incrementalAlterConfigs(Map.of(res, List.of(
                    new AlterConfigOp(new ConfigEntry("retention.ms", "soon"), AlterConfigOp.OpType.SET)))).all()));
            r.put("incremental_unknown_key", outcome(a.incrementalAlterConfigs(Map.of(res, List.of(
                    new AlterConfigOp(new ConfigEntry("no.such.key", "1"), AlterConfigOp.OpType.SET)))).all()));
            r.put("incremental_missing_topic", outcome(a.incrementalAlterConfigs(Map.of(
                    new ConfigResource(ConfigResource.Type.TOPIC, NS + "-adm-missing"), List.of(
                    new AlterConfigOp(new ConfigEntry("retention.ms", "1"), AlterConfigOp.OpType.SET)))).all()));
            ConfigResource br = new ConfigResource(ConfigResource.Type.BROKER, Integer.toString(node));
            Config bc = a.describeConfigs(List.of(br)).all().get(TIMEOUT_S, TimeUnit.SECONDS).get(br);
            Map<String, Object> bcs = new TreeMap<>();
            for (String k : List.of("message.max.bytes", "log.segment.bytes", "log.cleanup.policy",
                                    "auto.create.topics.enable", "compression.type")) {
                ConfigEntry e = bc.get(k);
                bcs.put(k, e == null ? null : e.value() + " " + e.source() + (e.isReadOnly() ? " ro" : ""));
            }
            r.put("broker_configs", bcs);

            // deleteRecords and the offsets it moves
            // timestamps rising to a plateau: records 70..99 hold the largest
            try (KafkaProducer<String, String> p = new KafkaProducer<>(producerProps(bootstrap))) {
                for (int i = 0; i < 100; i++)
                    p.send(new ProducerRecord<>(NS + "-adm-b", 0, ProduceConsume.BASE_TS + Math.min(i, 70) * 10L,
                                                "k" + i, "d-" + i));
                p.flush();
            }
            TopicPartition b0 = new TopicPartition(NS + "-adm-b", 0);
            r.put("delete_records_40", a.deleteRecords(Map.of(b0, RecordsToDelete.beforeOffset(40)))
                    .lowWatermarks().get(b0).get(TIMEOUT_S, TimeUnit.SECONDS).lowWatermark());
            r.put("delete_records_past_end",
                  outcome(a.deleteRecords(Map.of(b0, RecordsToDelete.beforeOffset(1000))).all()));
            r.put("list_offsets_after_delete", listOffsets(a, b0));
            try (KafkaConsumer<String, String> c = new KafkaConsumer<>(consumerProps(bootstrap, null))) {
                c.assign(List.of(b0));
                c.seekToBeginning(List.of(b0));
                ConsumerRecords<String, String> recs = ConsumerRecords.empty();
                for (int i = 0; i < 50 && recs.isEmpty(); i++)
                    recs = c.poll(POLL);
                r.put("first_offset_read_after_delete",
                      recs.isEmpty() ? -1 : recs.iterator().next().offset());
            }
            r.put("delete_records_to_hw", a.deleteRecords(Map.of(b0, RecordsToDelete.beforeOffset(-1)))
                    .lowWatermarks().get(b0).get(TIMEOUT_S, TimeUnit.SECONDS).lowWatermark());

            // log dirs: one directory holding every partition, sizes
            Map<String, LogDirDescription> dirs = a.describeLogDirs(List.of(node)).allDescriptions()
                    .get(TIMEOUT_S, TimeUnit.SECONDS).get(node);
            Map<String, Object> ld = new LinkedHashMap<>();
            ld.put("dirs", dirs.size());
            for (LogDirDescription d : dirs.values()) {
                ld.put("error", d.error() == null ? "none" : d.error().getClass().getSimpleName());
                ld.put("total_bytes_known", d.totalBytes().isPresent() && d.totalBytes().getAsLong() > 0);
                ld.put("usable_bytes_known", d.usableBytes().isPresent() && d.usableBytes().getAsLong() > 0);
                Map<String, Object> mine = new TreeMap<>();
                for (Map.Entry<TopicPartition, ReplicaInfo> e : d.replicaInfos().entrySet())
                    if (e.getKey().topic().startsWith(NS + "-adm"))
                        mine.put(e.getKey().toString(), (e.getValue().size() > 0 ? "data" : "empty")
                                + (e.getValue().isFuture() ? " future" : "") + " lag=" + e.getValue().offsetLag());
                ld.put("partitions", mine);
            }
            r.put("describe_log_dirs", ld);

            r.put("delete_topics", outcome(a.deleteTopics(List.of(NS + "-adm-a", NS + "-adm-b")).all()));
            r.put("delete_topics_again", outcome(a.deleteTopics(List.of(NS + "-adm-a")).all()));
            // Kafka's brokers learn of a deletion from the metadata log a
            // moment later: wait (bounded) until the listing shows it
            Set<String> after = new TreeSet<>();
            long until = System.currentTimeMillis() + TIMEOUT_S * 1000L;
            do {
                after.clear();
                for (String n : a.listTopics().names().get(TIMEOUT_S, TimeUnit.SECONDS))
                    if (n.startsWith(NS + "-adm"))
                        after.add(n);
                if (!after.isEmpty())
                    Thread.sleep(100);
            } while (!after.isEmpty() && System.currentTimeMillis() < until);
            r.put("list_after_delete", after);
        }
        return r;
    }

    static Map<String, Object> listOffsets(Admin a, TopicPartition tp) throws Exception {
        Map<String, Object> r = new LinkedHashMap<>();
        Map<String, OffsetSpec> specs = new LinkedHashMap<>();
        specs.put("earliest", OffsetSpec.earliest());
        specs.put("latest", OffsetSpec.latest());
        specs.put("max_timestamp", OffsetSpec.maxTimestamp());
        specs.put("for_timestamp_of_record_50", OffsetSpec.forTimestamp(ProduceConsume.BASE_TS + 500));
        for (Map.Entry<String, OffsetSpec> e : specs.entrySet()) {
            ListOffsetsResult.ListOffsetsResultInfo info = a.listOffsets(Map.of(tp, e.getValue()))
                    .partitionResult(tp).get(TIMEOUT_S, TimeUnit.SECONDS);
            r.put(e.getKey(), info.offset());
        }
        return r;
    }

    @SuppressWarnings("deprecation")
    static Map<String, Object> groups(String bootstrap) throws Exception {
        Map<String, Object> r = new LinkedHashMap<>();
        String topic = NS + "-admg";
        String group = NS + "-admg-group";
        try (Admin a = admin(bootstrap)) {
            createTopic(a, topic, 2);
            produce(bootstrap, topic, "g", 0, 20);
            TopicPartition p0 = new TopicPartition(topic, 0), p1 = new TopicPartition(topic, 1);
            Properties cp = consumerProps(bootstrap, group);
            cp.put(ConsumerConfig.CLIENT_ID_CONFIG, "admg-consumer");
            try (KafkaConsumer<String, String> c = new KafkaConsumer<>(cp)) {
                c.subscribe(List.of(topic));
                int n = 0;
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(TIMEOUT_S);
                while (n < 20 && System.nanoTime() < deadline)
                    n += c.poll(POLL).count();
                c.commitSync(Map.of(p0, new OffsetAndMetadata(c.position(p0), "meta-0"),
                                    p1, new OffsetAndMetadata(c.position(p1))));
                r.put("consumed", n);
                r.put("list_active", listGroup(a, group));
                r.put("describe_active", Groups.describe(a, group));
                r.put("delete_active_group", outcome(a.deleteConsumerGroups(List.of(group)).all()));
            }
            r.put("list_empty", listGroup(a, group));
            r.put("describe_empty", Groups.describe(a, group));
            r.put("offsets", offsets(a, group));
            r.put("alter_offsets", outcome(a.alterConsumerGroupOffsets(group,
                    Map.of(p0, new OffsetAndMetadata(1, "rewound"))).all()));
            r.put("offsets_altered", offsets(a, group));
            r.put("delete_offsets", outcome(a.deleteConsumerGroupOffsets(group, Set.of(p1)).all()));
            r.put("offsets_after_delete", offsets(a, group));
            r.put("describe_missing", outcome(a.describeConsumerGroups(List.of(NS + "-admg-missing")).all()));
            r.put("offsets_missing_group", offsets(a, NS + "-admg-missing"));
            r.put("delete_group", outcome(a.deleteConsumerGroups(List.of(group)).all()));
            r.put("list_after_delete", listGroup(a, group));
            r.put("delete_group_again", outcome(a.deleteConsumerGroups(List.of(group)).all()));
        }
        return r;
    }

    /** The group as listConsumerGroups and listGroups show it, or "absent". */
    @SuppressWarnings("deprecation")
    static List<String> listGroup(Admin a, String group) throws Exception {
        List<String> r = new ArrayList<>();
        String old = "absent";
        for (ConsumerGroupListing l : a.listConsumerGroups().all().get(TIMEOUT_S, TimeUnit.SECONDS))
            if (l.groupId().equals(group))
                old = "listConsumerGroups " + l.groupState().map(Object::toString).orElse("?") + " "
                        + l.type().map(Object::toString).orElse("?") + " simple=" + l.isSimpleConsumerGroup();
        r.add(old);
        String now = "absent";
        for (GroupListing l : a.listGroups(ListGroupsOptions.forConsumerGroups()).all()
                .get(TIMEOUT_S, TimeUnit.SECONDS))
            if (l.groupId().equals(group))
                now = "listGroups " + l.groupState().map(Object::toString).orElse("?") + " "
                        + l.type().map(Object::toString).orElse("?") + " protocol=" + l.protocol();
        r.add(now);
        return r;
    }

    static Object offsets(Admin a, String group) {
        try {
            Map<TopicPartition, OffsetAndMetadata> m = a.listConsumerGroupOffsets(group)
                    .partitionsToOffsetAndMetadata().get(TIMEOUT_S, TimeUnit.SECONDS);
            Map<String, Object> r = new TreeMap<>();
            for (Map.Entry<TopicPartition, OffsetAndMetadata> e : m.entrySet())
                r.put(e.getKey().toString(), e.getValue() == null ? null
                        : e.getValue().offset() + " '" + e.getValue().metadata() + "' epoch="
                          + e.getValue().leaderEpoch().map(Object::toString).orElse("none"));
            return r;
        } catch (Exception e) {
            Throwable c = e.getCause() == null ? e : e.getCause();
            return c.getClass().getSimpleName();
        }
    }
}

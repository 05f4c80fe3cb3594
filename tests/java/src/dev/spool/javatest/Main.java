package dev.spool.javatest;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The Java side of the integration tests (tests/java/java_side.py runs it):
 *
 *     Main SCENARIO[,SCENARIO...] WORKDIR NAME=BOOTSTRAP [NAME=BOOTSTRAP ...]
 *
 * runs the scenarios in order against each named broker, the brokers in
 * parallel (one thread each: their topics and groups are their own), and
 * prints one JSON line per scenario and broker:
 *
 *     {"broker": NAME, "scenario": S, "ms": T, "result": {...}}
 *     {"broker": NAME, "scenario": S, "ms": T, "error": "stack trace"}
 *
 * Scenarios: produce_consume, group_range, group_cooperative, admin_topics,
 * admin_groups, wordcount, wordcount_eos, idempotent_defaults, txn_producer,
 * txn_chaos.  The exit code is 0 unless the arguments are
 * wrong; failures are data for the test to judge.
 */
public final class Main {
    private Main() {}

    interface Scenario {
        Map<String, Object> run(String bootstrap, Path work) throws Exception;
    }

    static final Map<String, Scenario> SCENARIOS = new LinkedHashMap<>();

    static {
        SCENARIOS.put("produce_consume", (b, w) -> ProduceConsume.run(b));
        SCENARIOS.put("group_range", (b, w) -> Groups.run(b, "range",
                "org.apache.kafka.clients.consumer.RangeAssignor"));
        SCENARIOS.put("group_cooperative", (b, w) -> Groups.run(b, "cooperative",
                "org.apache.kafka.clients.consumer.CooperativeStickyAssignor"));
        SCENARIOS.put("admin_topics", (b, w) -> AdminOps.topics(b));
        SCENARIOS.put("admin_groups", (b, w) -> AdminOps.groups(b));
        SCENARIOS.put("wordcount", WordCount.AT_LEAST_ONCE::run);
        SCENARIOS.put("wordcount_eos", WordCount.EXACTLY_ONCE::run);
        SCENARIOS.put("txn_producer", (b, w) -> Transactions.run(b));
        SCENARIOS.put("txn_chaos", (b, w) -> Transactions.chaos(b));
        SCENARIOS.put("idempotent_defaults", (b, w) -> Idempotence.run(b));
    }

    static synchronized void emit(Map<String, Object> line) {
        System.out.println(Json.write(line));
        System.out.flush();
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 3) {
            System.err.println("usage: Main SCENARIO[,SCENARIO...] WORKDIR NAME=BOOTSTRAP ...");
            System.exit(2);
        }
        String[] names = args[0].split(",");
        for (String n : names)
            if (!SCENARIOS.containsKey(n)) {
                System.err.println("unknown scenario " + n + "; known: " + SCENARIOS.keySet());
                System.exit(2);
            }
        Path work = Path.of(args[1]);
        List<Thread> threads = new ArrayList<>();
        for (int i = 2; i < args.length; i++) {
            String[] nb = args[i].split("=", 2);
            String broker = nb[0], bootstrap = nb[1];
            Thread t = new Thread(() -> {
                for (String s : names) {
                    Map<String, Object> line = new LinkedHashMap<>();
                    line.put("broker", broker);
                    line.put("scenario", s);
                    long t0 = System.nanoTime();
                    try {
                        Path dir = Files.createDirectories(work.resolve(broker).resolve(s));
                        Map<String, Object> r = SCENARIOS.get(s).run(bootstrap, dir);
                        line.put("ms", (System.nanoTime() - t0) / 1_000_000);
                        line.put("result", r);
                    } catch (Throwable e) {
                        StringWriter sw = new StringWriter();
                        e.printStackTrace(new PrintWriter(sw));
                        line.put("ms", (System.nanoTime() - t0) / 1_000_000);
                        line.put("error", sw.toString());
                    }
                    emit(line);
                }
            }, "broker-" + broker);
            threads.add(t);
            t.start();
        }
        for (Thread t : threads)
            t.join();
        // Clients' own threads (and Streams' RocksDB) must not keep the JVM.
        System.exit(0);
    }
}

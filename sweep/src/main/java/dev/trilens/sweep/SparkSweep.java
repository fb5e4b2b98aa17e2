package dev.trilens.sweep;

import dev.trilens.TrilensException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.BiConsumer;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.spark.ExceptionFailure;
import org.apache.spark.SparkConf;
import org.apache.spark.TaskFailedReason;
import org.apache.spark.api.java.JavaFutureAction;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.launcher.JavaModuleOptions;
import org.apache.spark.scheduler.SparkListener;
import org.apache.spark.scheduler.SparkListenerTaskEnd;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;

/**
 * The Spark side of a sweep: a session configured for it, one task per run, and the Parquet table. Embedded by
 * default ({@code local[N,F]}: N worker threads, F attempts per task), a cluster by another master or spark-submit.
 */
final class SparkSweep implements AutoCloseable {
    /** The Spark setting that injects a failure: RUN_ID@EPOCH (see {@link SweepRun.Injection}). */
    static final String INJECT = "spark.trilens.injectFailure";

    private static final Pattern LOCAL = Pattern.compile("local(?:\\[(\\*|\\d+)(?:\\s*,\\s*(\\d+))?])?");

    /**
     * The settings of a sweep: the master, the threads of a run (= spark.task.cpus, the cores a task gets) and the
     * attempts a run gets before the sweep gives up on it.
     */
    record Settings(SparkConf conf, String master, int threads, int maxAttempts) {
        boolean local() {
            return LOCAL.matcher(master).matches();
        }
    }

    /**
     * Resolves the flags against what spark-submit put in the system properties (spark.master, spark.jars, ...).
     * For a local master the attempts are its F (local[N] runs a task once, whatever spark.task.maxFailures says);
     * for a cluster, spark.task.maxFailures.
     *
     * @param retries null when --retries was not given (2, or what the master's F says)
     */
    static Settings settings(String masterFlag, Integer retries, int threadsPerRun, Map<String, String> extra,
                             String appName) {
        SparkConf conf = new SparkConf();
        extra.forEach((k, v) -> {
            if (!k.startsWith("spark.")) {
                throw new TrilensException("--conf " + k + "=" + v + " is not a Spark setting; expected KEY=VALUE "
                        + "with KEY starting spark.");
            }
        });
        if (masterFlag == null && extra.containsKey("spark.master")) {
            masterFlag = extra.get("spark.master");
        }
        String master = masterFlag != null ? masterFlag : conf.get("spark.master", null);
        int attempts;
        Matcher local = LOCAL.matcher(master == null ? "local[*]" : master.strip());
        if (local.matches()) {
            int cores = local.group(1) == null ? 1 : local.group(1).equals("*")
                    ? Runtime.getRuntime().availableProcessors() : Integer.parseInt(local.group(1));
            if (cores < 1) {
                throw new TrilensException("--master " + master + " has no worker threads; expected local[N] with N "
                        + ">= 1");
            }
            if (local.group(2) != null) {
                attempts = Integer.parseInt(local.group(2));
                if (attempts < 1 || (retries != null && attempts != retries + 1)) {
                    throw new TrilensException("--master " + master + " gives a run " + attempts + " attempt"
                            + (attempts == 1 ? "" : "s") + (retries == null ? "" : ", --retries " + retries + " asks "
                            + (retries + 1)) + "; expected F >= 1 in local[N,F], or --retries alone");
                }
            } else {
                attempts = (retries == null ? 2 : retries) + 1;
            }
            if (threadsPerRun > cores) {
                throw new TrilensException("--threads-per-run " + threadsPerRun + " is more than the " + cores
                        + " worker thread" + (cores == 1 ? "" : "s") + " of " + (master == null ? "this machine"
                        : "--master " + master) + "; expected at most " + cores);
            }
            // the default names its thread count, so the plan line says what it runs on
            master = "local[" + (master == null ? String.valueOf(cores) : local.group(1) == null ? "1"
                    : local.group(1)) + "," + attempts + "]";
            // embedded: nothing listens beyond this machine, and no web UI
            conf.set("spark.driver.host", "127.0.0.1");
            conf.set("spark.driver.bindAddress", "127.0.0.1");
            conf.set("spark.ui.enabled", "false");
        } else {
            attempts = (retries == null ? 2 : retries) + 1;
            conf.set("spark.task.maxFailures", String.valueOf(attempts));
        }
        conf.setMaster(master);
        conf.setAppName(appName);
        conf.set("spark.task.cpus", String.valueOf(threadsPerRun));
        // a run trained twice at once would fight over its folder: one attempt at a time
        conf.set("spark.speculation", "false");
        // Spark's own JVM options for Java 17 (its add-opens list, and jdk.incubator.vector for our kernels): set
        // here for executors (and a cluster-mode driver); an embedded driver got them from ./trilens sweep
        for (String key : List.of("spark.executor.extraJavaOptions", "spark.driver.extraJavaOptions")) {
            String given = extra.getOrDefault(key, conf.get(key, ""));
            conf.set(key, (JavaModuleOptions.defaultModuleOptions() + " " + given).strip());
        }
        // run from the sweep jar (./trilens sweep): executors elsewhere need it too (embedded ones share our class path)
        Path jar = ownJar();
        String jars = conf.get("spark.jars", "");
        if (!local.matches() && jar != null && Arrays.stream(jars.split(",")).noneMatch(j -> j.endsWith("/" + jar.getFileName()))) {
            conf.set("spark.jars", jars.isEmpty() ? jar.toUri().toString() : jars + "," + jar.toUri());
        }
        extra.forEach((k, v) -> {
            if (!k.endsWith("extraJavaOptions") && !k.equals("spark.master")) {
                conf.set(k, v);
            }
        });
        if (conf.getBoolean("spark.speculation", false)) {
            throw new TrilensException("--conf spark.speculation=true would train a run twice at once; a sweep keeps "
                    + "speculative execution off");
        }
        int threads = conf.getInt("spark.task.cpus", threadsPerRun);
        if (!local.matches()) {
            attempts = conf.getInt("spark.task.maxFailures", attempts);
        }
        return new Settings(conf, master, threads, attempts);
    }

    /** The jar this class was loaded from, or null (classes in a folder, as in the tests). */
    private static Path ownJar() {
        try {
            Path p = Path.of(SparkSweep.class.getProtectionDomain().getCodeSource().getLocation().toURI());
            return Files.isRegularFile(p) ? p : null;
        } catch (Exception e) {
            return null;
        }
    }

    private final SparkSession session;
    private final double startupSeconds;

    private SparkSweep(SparkSession session, double startupSeconds) {
        this.session = session;
        this.startupSeconds = startupSeconds;
    }

    static SparkSweep start(Settings s) {
        long t0 = System.nanoTime();
        SparkSession session = SparkSession.builder().config(s.conf()).getOrCreate();
        return new SparkSweep(session, (System.nanoTime() - t0) / 1e9);
    }

    double startupSeconds() {
        return startupSeconds;
    }

    String version() {
        return session.version();
    }

    /** Tasks that can run at once: the cores Spark has (local: N) over the cores a task takes. */
    int slots(Settings s) {
        return Math.max(1, session.sparkContext().defaultParallelism() / s.threads());
    }

    /**
     * Runs one task per run and returns their outcomes (as JSON), calling tick about twice a second while they run
     * and failedAttempt(run index, reason) for each attempt Spark will retry.
     */
    List<String> run(List<Grid.Run> runs, SweepTask task, Runnable tick, BiConsumer<Integer, String> failedAttempt)
            throws InterruptedException {
        JavaSparkContext jsc = JavaSparkContext.fromSparkContext(session.sparkContext());
        SparkListener listener = new SparkListener() {
            @Override
            public void onTaskEnd(SparkListenerTaskEnd end) {
                if (end.reason() instanceof ExceptionFailure f) {
                    failedAttempt.accept(end.taskInfo().index(), f.className().replaceAll(".*[.$]", "") + ": "
                            + f.description());
                } else if (end.reason() instanceof TaskFailedReason r) {
                    failedAttempt.accept(end.taskInfo().index(), r.toErrorString().lines().findFirst().orElse(""));
                }
            }
        };
        session.sparkContext().addSparkListener(listener);
        try {
            jsc.setJobDescription("trilens sweep: " + runs.size() + " runs");
            JavaFutureAction<List<String>> job = jsc.parallelize(runs, runs.size()).map(task).collectAsync();
            while (true) {
                try {
                    List<String> outcomes = job.get(500, TimeUnit.MILLISECONDS);
                    tick.run();
                    return outcomes;
                } catch (TimeoutException e) {
                    tick.run();
                } catch (ExecutionException e) {
                    Throwable c = e.getCause() == null ? e : e.getCause();
                    throw new TrilensException("Spark stopped the sweep: " + String.valueOf(c.getMessage()).lines()
                            .findFirst().orElse(c.toString()), c);
                }
            }
        } finally {
            session.sparkContext().removeSparkListener(listener);
        }
    }

    /** Reads a Parquet file back with Spark SQL, as rows of column -> value: for the tests. */
    List<Map<String, Object>> readParquet(Path file) {
        List<Map<String, Object>> out = new ArrayList<>();
        for (Row row : session.read().parquet(file.toAbsolutePath().toUri().toString()).collectAsList()) {
            Map<String, Object> m = new java.util.LinkedHashMap<>();
            for (String f : row.schema().fieldNames()) {
                m.put(f, row.getAs(f));
            }
            out.add(m);
        }
        return out;
    }

    @Override
    public void close() {
        session.stop();
    }
}

package dev.trilens.sweep;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.trilens.TrilensException;
import dev.trilens.io.AtomicFiles;
import dev.trilens.io.OutputLock;
import dev.trilens.io.OutputSet;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.concurrent.atomic.AtomicInteger;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "trilens sweep", mixinStandardHelpOptions = true, sortOptions = false, version = "trilens sweep 0.1.0",
        description = {"Train every run of a grid (the cross product of its axes) on Apache Spark, one task per run, "
                + "embedded by default (local[N,F]: N worker threads, F attempts per run) or on a cluster "
                + "(--master spark://..., k8s://..., yarn). Each run trains in OUT/runs/<id>/ as `train` does, "
                + "then writes result.json; a failed attempt is retried from the run's checkpoint, and a run that "
                + "has its result.json is skipped, so a stopped sweep started again trains only what is missing.",
                "Then writes OUT/results.csv and OUT/results.parquet (one row per run), OUT/sweep.md (mean ± sample "
                        + "sd over the seeds of each grid point) and OUT/figures/ (PNG and SVG)."})
public final class SweepCommand implements Callable<Integer> {

    static final String CSV = "results.csv", PARQUET = "results.parquet", MARKDOWN = "sweep.md",
            JSON_FILE = "sweep.json", FIGURES = "figures", GRID_COPY = "grid.yaml";

    @Option(names = "--grid", required = true, description = "the grid file (YAML): preset, train (fixed flags) and "
            + "axes, e.g. axes: {d_mlp: [0, 20], init_seed: [0, 1, 2]}")
    Path grid;

    @Option(names = "--out", description = "output folder (default: runs/sweep-<grid file name>, so the same command "
            + "again continues the sweep)")
    Path out;

    @Option(names = "--master", description = "Spark master (default: local[<cores>,<retries + 1>]); local[N] takes "
            + "its attempts from --retries; spark://HOST:PORT, k8s://..., yarn run on a cluster whose executors "
            + "share --out")
    String master;

    @Option(names = "--retries", description = "times a failed run is retried, each from its checkpoint "
            + "(default: 2)")
    Integer retries;

    @Option(names = "--threads-per-run", defaultValue = "1", description = "threads a run trains with, and the "
            + "cores Spark gives its task (spark.task.cpus) (default: ${DEFAULT-VALUE})")
    int threadsPerRun;

    @Option(names = "--max-runs", defaultValue = "100", description = "a grid of more runs needs --yes "
            + "(default: ${DEFAULT-VALUE})")
    int maxRuns;

    @Option(names = "--yes", description = "run a grid larger than --max-runs")
    boolean yes;

    @Option(names = "--conf", paramLabel = "KEY=VALUE", description = "a Spark setting, as spark-submit --conf "
            + "(repeatable)")
    Map<String, String> conf = new LinkedHashMap<>();

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() throws InterruptedException {
        CommandLine cl = spec.commandLine();
        check(cl, retries == null || retries >= 0, "--retries must be >= 0, got " + retries);
        check(cl, threadsPerRun >= 1, "--threads-per-run must be >= 1, got " + threadsPerRun);
        check(cl, maxRuns >= 1, "--max-runs must be >= 1, got " + maxRuns);
        Grid g = Grid.read(grid);
        long n = g.size();
        if (n > maxRuns && !yes) {
            throw new TrilensException(grid + " makes " + (n == Long.MAX_VALUE ? "too many" : String.valueOf(n))
                    + " runs (" + g.shape() + "), more than --max-runs " + maxRuns + "; pass --yes to run them all");
        }
        List<Grid.Run> runs = g.runs();
        SparkSweep.Settings settings = SparkSweep.settings(master, retries, threadsPerRun, conf,
                "trilens sweep " + grid.getFileName());
        String injectSpec = settings.conf().get(SparkSweep.INJECT, null);
        SweepRun.Injection inject = injectSpec == null ? null : SweepRun.Injection.parse(injectSpec, runs);
        Path dir = out != null ? out : Path.of("runs", "sweep-" + stem(grid.getFileName().toString()));
        try (OutputLock lock = OutputLock.acquire(dir, "sweep")) {
            return sweep(cl.getOut(), g, runs, settings, inject, dir);
        }
    }

    private int sweep(PrintWriter o, Grid g, List<Grid.Run> runs, SparkSweep.Settings settings,
                      SweepRun.Injection inject, Path dir) throws InterruptedException {
        long t0 = System.nanoTime();
        List<Grid.Run> todo = new ArrayList<>();
        for (Grid.Run run : runs) {
            if (SweepRun.finished(dir, run) == null) {
                SweepRun.checkCheckpoint(dir, run);
                todo.add(run);
            }
        }
        byte[] gridText = readGrid();
        AtomicFiles.write(dir.resolve(GRID_COPY), s -> s.write(gridText));
        o.printf("sweep %s: %d runs (%s; %s) into %s%n", grid, runs.size(), g.shape(), g.fixedText(), dir);
        o.printf("%d already done, %d to train on %s, %d thread%s per run, up to %d attempt%s per run%n",
                runs.size() - todo.size(), todo.size(), settings.master(), settings.threads(),
                settings.threads() == 1 ? "" : "s", settings.maxAttempts(), settings.maxAttempts() == 1 ? "" : "s");
        o.flush();

        Map<String, Object> timing = new LinkedHashMap<>();
        int failedAttempts = todo.isEmpty() ? 0 : train(o, todo, settings, inject, dir, timing);
        timing.put("failed_attempts", failedAttempts);
        List<RunResult> results = new ArrayList<>();
        for (Grid.Run run : runs) {
            RunResult r = SweepRun.finished(dir, run);
            if (r == null) {
                throw new TrilensException("run " + run.id() + " finished but " + SweepRun.dir(dir, run.id())
                        .resolve(SweepRun.RESULT) + " is not there; expected --out on storage every executor "
                        + "shares with the driver");
            }
            results.add(r);
        }
        timing.put("wall_seconds", (System.nanoTime() - t0) / 1e9);
        write(o, g, runs.size() - todo.size(), settings, timing, new SweepTable(g, results), dir);
        return 0;
    }

    /**
     * Starts Spark, trains the runs, one task each, and stops it; returns the failed attempts (retried), or throws
     * naming the runs that failed their last one. Spark is started only when there is something to train.
     */
    private static int train(PrintWriter o, List<Grid.Run> todo, SparkSweep.Settings settings,
                             SweepRun.Injection inject, Path dir, Map<String, Object> timing)
            throws InterruptedException {
        AtomicInteger failedAttempts = new AtomicInteger();
        List<SweepTask.Outcome> outcomes = new ArrayList<>();
        try (SparkSweep spark = SparkSweep.start(settings)) {
            o.printf("Spark %s started in %.1f s%n", spark.version(), spark.startupSeconds());
            o.flush();
            timing.put("spark_version", spark.version());
            timing.put("spark_startup_seconds", spark.startupSeconds());
            long j0 = System.nanoTime();
            Progress progress = new Progress(o, dir, todo);
            SweepTask task = new SweepTask(dir, settings.threads(), settings.maxAttempts(), inject);
            List<String> json = spark.run(todo, task, progress::report, (index, reason) -> {
                failedAttempts.incrementAndGet();
                synchronized (o) {
                    o.printf("run %s: an attempt failed (%s); Spark retries it, from its checkpoint%n",
                            todo.get(index).id(), reason.lines().findFirst().orElse(""));
                    o.flush();
                }
            });
            double jobSeconds = (System.nanoTime() - j0) / 1e9;
            ObjectMapper mapper = new ObjectMapper();
            for (String s : json) {
                try {
                    outcomes.add(mapper.readValue(s, SweepTask.Outcome.class));
                } catch (IOException e) {
                    throw new IllegalStateException("a task's outcome is not JSON: " + s, e);
                }
            }
            List<SweepTask.Outcome> failed = outcomes.stream().filter(x -> x.error() != null).toList();
            for (SweepTask.Outcome f : failed) {
                o.printf("run %s failed %d time%s, the last: %s%n", f.runId(), settings.maxAttempts(),
                        settings.maxAttempts() == 1 ? "" : "s", f.error());
            }
            o.flush();
            if (!failed.isEmpty()) {
                throw new TrilensException(failed.size() + " of " + todo.size() + " runs failed (first: "
                        + failed.get(0).runId() + ": " + failed.get(0).error() + "); the others keep their "
                        + "results: run the sweep again to retry only those");
            }
            double sum = outcomes.stream().mapToDouble(x -> x.result().runSeconds()).sum();
            int slots = spark.slots(settings);
            timing.put("job_seconds", jobSeconds);
            timing.put("sum_run_seconds", sum);
            timing.put("slots", slots);
            o.printf("%d runs trained in %.1f s; their own times add up to %.1f s (%.1f s over %d slot%s)%n",
                    todo.size(), jobSeconds, sum, sum / slots, slots, slots == 1 ? "" : "s");
        }
        return failedAttempts.get();
    }

    /** Writes the tables and figures as one set: a failure half-way leaves the previous set whole. */
    private void write(PrintWriter o, Grid g, int skipped, SparkSweep.Settings settings, Map<String, Object> timing,
                       SweepTable table, Path dir) {
        Map<String, Object> summary = new LinkedHashMap<>();
        summary.put("grid", grid.toString());
        summary.put("preset", g.preset());
        Map<String, Object> fixed = new LinkedHashMap<>();
        g.fixed().forEach((k, v) -> fixed.put(k, Grid.typed(k, v)));
        summary.put("train", fixed);
        Map<String, Object> axes = new LinkedHashMap<>();
        g.axes().forEach(a -> axes.put(a.name(), a.values().stream().map(v -> Grid.typed(a.name(), v)).toList()));
        summary.put("axes", axes);
        summary.put("runs", table.results().size());
        summary.put("already_done", skipped);
        summary.put("master", settings.master());
        summary.put("threads_per_run", settings.threads());
        summary.put("max_attempts", settings.maxAttempts());
        summary.putAll(timing);
        String wall = String.format(Locale.ROOT, "This sweep: %d runs trained, %d already done, on %s.",
                table.results().size() - skipped, skipped, settings.master());
        List<Path> figures;
        long t0 = System.nanoTime();
        double figureSeconds, parquetSeconds;
        try (OutputSet set = OutputSet.begin(dir, "sweep")) {
            byte[] csv = table.csv();
            AtomicFiles.write(set.path(CSV), s -> s.write(csv));
            byte[] md = table.markdown(wall).getBytes(StandardCharsets.UTF_8);
            AtomicFiles.write(set.path(MARKDOWN), s -> s.write(md));
            byte[] json = new ObjectMapper().writerWithDefaultPrettyPrinter().writeValueAsBytes(summary);
            AtomicFiles.write(set.path(JSON_FILE), s -> {
                s.write(json);
                s.write('\n');
            });
            Files.createDirectories(set.path(FIGURES));
            long f0 = System.nanoTime();
            figures = SweepFigures.write(table, set.path(FIGURES));
            long p0 = System.nanoTime();
            ParquetTable.write(table, set.path(PARQUET));
            figureSeconds = (p0 - f0) / 1e9;
            parquetSeconds = (System.nanoTime() - p0) / 1e9;
            set.commit();
        } catch (IOException e) {
            throw new TrilensException("cannot write the results into " + dir + ": " + e.getMessage(), e);
        }
        o.printf("%n%s%n%n%s%n", table.caption(), table.pointsTable());
        o.printf("wrote %s, %s, %s, %s and %d figures in %s (in %.1f s: the figures %.1f s, Parquet %.1f s)%n",
                dir.resolve(CSV), dir.resolve(PARQUET), dir.resolve(MARKDOWN), dir.resolve(JSON_FILE),
                figures.size() / 2, dir.resolve(FIGURES), (System.nanoTime() - t0) / 1e9, figureSeconds,
                parquetSeconds);
        o.flush();
    }

    private byte[] readGrid() {
        try {
            return Files.readAllBytes(grid);
        } catch (IOException e) {
            throw new TrilensException("cannot read grid file " + grid + ": " + e.getMessage(), e);
        }
    }

    static String stem(String fileName) {
        int dot = fileName.lastIndexOf('.');
        return dot > 0 ? fileName.substring(0, dot) : fileName;
    }

    private static void check(CommandLine cl, boolean ok, String message) {
        if (!ok) {
            throw new CommandLine.ParameterException(cl, message);
        }
    }

    /** Prints a line for each run as its result.json appears. */
    private static final class Progress {
        private final PrintWriter o;
        private final Path dir;
        private final List<Grid.Run> runs;
        private final Set<String> reported = new HashSet<>();
        private final int width;

        Progress(PrintWriter o, Path dir, List<Grid.Run> runs) {
            this.o = o;
            this.dir = dir;
            this.runs = runs;
            this.width = String.valueOf(runs.size()).length();
        }

        void report() {
            for (Grid.Run run : runs) {
                if (reported.contains(run.id())) {
                    continue;
                }
                RunResult r;
                try {
                    r = SweepRun.finished(dir, run);
                } catch (TrilensException e) {
                    continue; // reported at the end, with the sweep's error
                }
                if (r != null) {
                    reported.add(run.id());
                    synchronized (o) {
                        o.printf("[%" + width + "d/%d] %s  trigrams %d/%d, avg p %.3f, extracted %d  %.1f s%s%n",
                                reported.size(), runs.size(), run.id(), r.trigramNCorrect(), r.nTrigrams(),
                                r.trigramAvgCorrectProb(), r.nExtracted(), r.runSeconds(), r.resumedAfterEpoch() > 0
                                        ? " (resumed after epoch " + r.resumedAfterEpoch() + ")" : "");
                        o.flush();
                    }
                }
            }
        }
    }
}

package dev.trilens.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.trilens.TrilensException;
import dev.trilens.io.AtomicFiles;
import dev.trilens.io.OutputLock;
import dev.trilens.model.Parallel;
import dev.trilens.model.kernels.VectorWidth;
import dev.trilens.train.Comparison;
import dev.trilens.train.TrainConfig;
import dev.trilens.train.Trainer;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.UnaryOperator;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine;

@Command(name = "compare", mixinStandardHelpOptions = true,
        description = "Train each variant once per seed (seeds: the preset's, +1, +2, ...), each run in "
                + "OUT/<variant>-seed<N>/ as train writes it, then print the final-epoch metrics per variant as mean "
                + "± sample standard deviation over seeds, into OUT/compare.json and OUT/compare.md.")
public final class CompareCommand implements Callable<Integer> {

    /** Variant name -> how it changes the preset. */
    static final Map<String, UnaryOperator<TrainConfig>> VARIANTS = variants();

    private static Map<String, UnaryOperator<TrainConfig>> variants() {
        Map<String, UnaryOperator<TrainConfig>> m = new LinkedHashMap<>();
        m.put("mlp", c -> c);
        m.put("attn-only", c -> c.withDMlp(0));
        return m;
    }

    static final String JSON = "compare.json";
    static final String MARKDOWN = "compare.md";

    @Option(names = "--preset", description = "arena: the challenge's recipe (default); quick: a small model that "
            + "trains in seconds")
    TrainCommand.Preset preset;

    @Option(names = "--variants", split = ",", paramLabel = "<variant>", defaultValue = "mlp,attn-only",
            description = "comma-separated, of mlp (the preset as is) and attn-only (d_mlp 0) "
                    + "(default: ${DEFAULT-VALUE})")
    List<String> variantNames;

    @Option(names = "--seeds", defaultValue = "3", description = "runs per variant (default: ${DEFAULT-VALUE})")
    int seeds;

    @Option(names = "--epochs", description = "number of epochs (default: the preset's)")
    Integer epochs;

    @Option(names = "--threads", description = "worker threads in all (default: all cores); results do not "
            + "depend on it")
    Integer threads;

    @Option(names = "--parallel-runs", description = "runs trained at once, sharing the threads (default: as many "
            + "as threads, up to the number of runs)")
    Integer parallelRuns;

    @Option(names = "--out", description = "folder of the runs and the summary (default: "
            + "runs/compare-<preset>-<date>-<time>)")
    Path out;

    @Option(names = "--export-pt", description = "also write model.pt in each run folder, as train --export-pt does")
    boolean exportPt;

    @Option(names = "--resume", description = "continue the comparison in --out: finished runs are kept, "
            + "interrupted ones continued, missing ones started")
    boolean resume;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    /** One run to do: its folder name and a trainer ready to continue from wherever the run stands. */
    private record Job(String variant, long seed, String name, Trainer trainer) {
    }

    @Override
    public Integer call() throws InterruptedException {
        CommandLine cl = spec.commandLine();
        LinkedHashSet<String> names = new LinkedHashSet<>();
        for (String v : variantNames) {
            String name = v.trim();
            TrainCommand.check(cl, VARIANTS.containsKey(name), "unknown variant '" + name + "' in --variants, "
                    + "expected a comma-separated list of " + String.join(", ", VARIANTS.keySet()));
            TrainCommand.check(cl, names.add(name), "variant '" + name + "' is given twice in --variants");
        }
        TrainCommand.check(cl, seeds >= 1, "--seeds must be >= 1, got " + seeds);
        TrainCommand.check(cl, epochs == null || epochs >= 1, "--epochs must be >= 1, got " + epochs);
        TrainCommand.check(cl, parallelRuns == null || parallelRuns >= 1, "--parallel-runs must be >= 1, got "
                + parallelRuns);
        TrainCommand.check(cl, !resume || out != null, "--resume needs --out, the comparison folder to continue");
        TrainCommand.applyThreads(cl, threads);
        TrainCommand.Preset p = preset == null ? TrainCommand.Preset.arena : preset;
        Path dir = out != null ? out : Path.of("runs", "compare-" + p.name() + "-"
                + LocalDateTime.now().format(DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss")));
        TrainConfig base = TrainConfig.preset(p.name());
        if (epochs != null) {
            base = base.withEpochs(epochs);
        }
        try (OutputLock lock = OutputLock.acquire(dir, "compare")) {
            return compare(cl, p, base, names, dir);
        }
    }

    private int compare(CommandLine cl, TrainCommand.Preset p, TrainConfig base, LinkedHashSet<String> names,
                        Path dir) throws InterruptedException {

        List<Job> jobs = prepare(base, names, dir);
        PrintWriter o = cl.getOut();
        int total = Parallel.threads();
        // Whole runs side by side by default: they never wait for each other, while the quick preset's steps
        // (batch 128 x 20 tokens) are too small to split well (one cold run: 8.2 s on 1 thread, 5.9 s on 2). Measured
        // on 2 cores, `compare --preset quick --seeds 2` (4 runs): 2 at a time with 1 thread each 12.1-15.0 s (mean
        // 13.2 of 3), 1 at a time with 2 threads 14.0-16.7 s (mean 15.3). Threads that do not divide evenly idle.
        int atOnce = Math.min(jobs.size(), parallelRuns != null ? parallelRuns : total);
        int perRun = Math.max(1, total / atOnce);
        if (!Main.quiet()) {
            o.printf("comparing %s over seeds %s (preset %s, %d epochs): %d runs, %d at a time with %d thread%s "
                            + "each, into %s%n", String.join(", ", names), seedList(jobs), p, base.epochs(), jobs.size(),
                    atOnce, perRun, perRun == 1 ? "" : "s", dir);
            o.flush();
        }

        long t0 = System.nanoTime();
        Map<String, Double> seconds = train(jobs, atOnce, perRun, total, o);
        double wall = (System.nanoTime() - t0) / 1e9;

        List<Comparison.Variant> variants = new ArrayList<>();
        for (String v : names) {
            List<Comparison.Run> runs = new ArrayList<>();
            TrainConfig config = null;
            for (Job j : jobs) {
                if (j.variant().equals(v)) {
                    config = config == null ? j.trainer().config() : config;
                    runs.add(new Comparison.Run(j.seed(), j.name(), j.trainer().lastMetrics(), seconds.get(j.name())));
                }
            }
            variants.add(new Comparison.Variant(v, config, runs));
        }
        Comparison cmp = new Comparison(p.name(), variants);
        write(cmp, dir, wall, atOnce, perRun);

        o.printf("%n%s%n%n%s%n", cmp.caption(), cmp.table());
        o.printf("%d runs in %.1f s; wrote %s and %s%n", jobs.size(), wall, dir.resolve(JSON), dir.resolve(MARKDOWN));
        o.flush();
        return 0;
    }

    /**
     * A trainer per (variant, seed), all made before any training starts, so that a run in the way or a resumed run
     * with another config stops the command at once rather than hours in.
     */
    private List<Job> prepare(TrainConfig base, Iterable<String> variants, Path dir) {
        // every variant keeps the base's d_head
        VectorWidth.preferFor(base.dHead());
        List<Job> jobs = new ArrayList<>();
        for (String v : variants) {
            for (int i = 0; i < seeds; i++) {
                long seed = base.dataSeed() + i;
                String name = v + "-seed" + seed;
                Path runDir = dir.resolve(name);
                Trainer t = null;
                if (Files.exists(runDir.resolve(Trainer.STATE))) {
                    if (!resume) {
                        throw new TrilensException(runDir + " already holds a training run; pass --resume to "
                                + "continue the comparison, or choose another --out");
                    }
                    t = Trainer.resume(runDir);
                    TrainCommand.checkSameConfig(runDir, t.config(), config(base, v, seed));
                }
                jobs.add(new Job(v, seed, name, t));
            }
        }
        List<Job> ready = new ArrayList<>();
        for (Job j : jobs) {
            Trainer t = j.trainer() != null ? j.trainer()
                    : Trainer.start(config(base, j.variant(), j.seed()), dir.resolve(j.name()));
            if (exportPt) {
                t.exportPt();
            }
            ready.add(new Job(j.variant(), j.seed(), j.name(), t));
        }
        return ready;
    }

    private static TrainConfig config(TrainConfig base, String variant, long seed) {
        return VARIANTS.get(variant).apply(base).withSeed(seed);
    }

    private static String seedList(List<Job> jobs) {
        return String.join(", ", jobs.stream().map(j -> String.valueOf(j.seed())).distinct().toList());
    }

    /** Thrown into a run's training loop when another run has failed, so the command stops at once. */
    private static final class Cancelled extends RuntimeException {
        Cancelled() {
            super(null, null, false, false);
        }
    }

    /** Trains the jobs, atOnce at a time with perRun threads each; returns each run's wall-clock seconds. */
    private Map<String, Double> train(List<Job> jobs, int atOnce, int perRun, int total, PrintWriter o)
            throws InterruptedException {
        Map<String, Double> seconds = new ConcurrentHashMap<>();
        AtomicBoolean failed = new AtomicBoolean();
        int width = jobs.stream().mapToInt(j -> j.name().length()).max().orElse(0);
        ExecutorService pool = Executors.newFixedThreadPool(atOnce, r -> {
            Thread t = new Thread(r, "trilens-compare");
            t.setDaemon(true);
            return t;
        });
        Parallel.setThreads(perRun);
        try {
            List<Future<?>> futures = new ArrayList<>();
            for (Job j : jobs) {
                futures.add(pool.submit(() -> {
                    try {
                        long t0 = System.nanoTime();
                        runOne(j, width, failed, o);
                        seconds.put(j.name(), (System.nanoTime() - t0) / 1e9);
                    } catch (RuntimeException | Error e) {
                        failed.set(true);
                        throw e;
                    }
                    return null;
                }));
            }
            Throwable first = null;
            for (int i = 0; i < futures.size(); i++) {
                try {
                    futures.get(i).get();
                } catch (ExecutionException e) {
                    Throwable cause = e.getCause();
                    if (first == null && !(cause instanceof Cancelled)) {
                        first = cause instanceof TrilensException
                                ? new TrilensException(jobs.get(i).name() + ": " + cause.getMessage(), cause) : cause;
                    }
                }
            }
            if (first instanceof RuntimeException re) {
                throw re;
            }
            if (first instanceof Error err) {
                throw err;
            }
            return seconds;
        } finally {
            failed.set(true);
            pool.shutdown();
            Parallel.setThreads(total);
        }
    }

    /** Trains one run, printing its first and last epochs and about ten between (all runs share one stdout). */
    private static void runOne(Job j, int width, AtomicBoolean failed, PrintWriter o) {
        if (failed.get()) {
            throw new Cancelled();
        }
        Trainer t = j.trainer();
        int epochs = t.config().epochs();
        int every = Math.max(1, epochs / 10);
        int nTrigrams = t.dataset().nTrigrams();
        t.run(new Trainer.Listener() {
            @Override
            public void batchDone(int epoch, int batch, int nBatches, double loss) {
                if (failed.get()) {
                    throw new Cancelled();
                }
            }

            @Override
            public void epochDone(Trainer.EpochMetrics m) {
                if (!Main.quiet() && (m.epoch() == 1 || m.epoch() % every == 0 || m.epoch() == epochs)) {
                    synchronized (o) {
                        o.printf("%-" + width + "s  epoch %" + String.valueOf(epochs).length() + "d/%d  train_loss "
                                        + "%.4f  val_loss %.4f  trigrams %d/%d correct, avg p %.3f  %.1fs%n", j.name(),
                                m.epoch(), epochs, m.trainLoss(), m.valLoss(), m.trigramNCorrect(), nTrigrams,
                                m.trigramAvgCorrectProb(), m.seconds());
                        o.flush();
                    }
                }
            }
        });
    }

    private static void write(Comparison cmp, Path dir, double wall, int atOnce, int perRun) {
        Comparison.Json json = cmp.toJson(atOnce, perRun, wall);
        byte[] bytes;
        try {
            bytes = new ObjectMapper().writerWithDefaultPrettyPrinter().writeValueAsBytes(json);
        } catch (java.io.IOException e) {
            throw new IllegalStateException(e);
        }
        AtomicFiles.write(dir.resolve(JSON), s -> {
            s.write(bytes);
            s.write('\n');
        });
        byte[] md = cmp.markdown().getBytes(StandardCharsets.UTF_8);
        AtomicFiles.write(dir.resolve(MARKDOWN), s -> s.write(md));
    }
}

package dev.trilens.cli;

import dev.trilens.model.Backprop;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.Parallel;
import dev.trilens.model.Weights;
import dev.trilens.model.kernels.VectorWidth;
import dev.trilens.train.AdamW;
import java.io.PrintWriter;
import java.util.Random;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(name = "bench", mixinStandardHelpOptions = true,
        description = "Benchmarks on the challenge's shape or any other (the shape flags, as train's), to set "
                + "beside the PyTorch peer ../shared/bench/torch_peer.py. eval: one forward pass with a full activation cache over 2500 x 50 "
                + "tokens; train: one training step (forward, backward, AdamW) on a batch of 512 x 50; "
                + "serve: POST /api/predict of `serve` on 50-token sequences, latency then --clients at once.")
public final class BenchCommand implements Callable<Integer> {

    enum What { eval, train, serve }

    @Parameters(index = "0", description = "what to time: ${COMPLETION-CANDIDATES}")
    What what;

    @Option(names = {"--iters", "--steps"}, defaultValue = "20",
            description = "timed repetitions (default: ${DEFAULT-VALUE}; serve: timed requests, default 2000)")
    int iters;

    @CommandLine.Mixin
    ShapeOptions shape;

    @Option(names = "--warmup", description = "untimed repetitions (serve: requests) first (default: until the JIT "
            + "has compiled every kernel: until two windows of ten runs in a row are no faster than the best before; "
            + "at least " + MIN_WARMUP_SECONDS + " s; serve: windows of 200, at least 4000 requests)")
    Integer warmup;

    /** The vector kernels run hundreds of times slower until C2 compiles them, which takes seconds, not steps. */
    private static final int MIN_WARMUP_SECONDS = 5, MAX_WARMUP_SECONDS = 60;

    @Option(names = "--model", description = "start from these weights (.pt or .safetensors) instead of a fresh "
            + "initialisation: a trained model's sharp attention exercises the kernels differently")
    java.nio.file.Path model;

    @Option(names = "--clients", defaultValue = "8", description = "serve: concurrent clients of the load test "
            + "(default: ${DEFAULT-VALUE})")
    int clients;

    @Option(names = "--seconds", defaultValue = "5", description = "serve: how long the load test runs (default: "
            + "${DEFAULT-VALUE})")
    double seconds;

    @Option(names = "--threads", description = "worker threads (default: all cores)")
    Integer threads;

    @CommandLine.Mixin
    LoadOptions loading;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        if (iters < 1) {
            throw new CommandLine.ParameterException(spec.commandLine(), "--iters must be >= 1, got " + iters);
        }
        if (warmup != null && warmup < 0) {
            throw new CommandLine.ParameterException(spec.commandLine(), "--warmup must be >= 0, got " + warmup);
        }
        if (threads != null) {
            if (threads < 1) {
                throw new CommandLine.ParameterException(spec.commandLine(), "--threads must be >= 1, got " + threads);
            }
            Parallel.setThreads(threads);
        }
        PrintWriter out = spec.commandLine().getOut();
        shape.check(spec.commandLine());
        Weights weights;
        if (model != null) {
            if (shape.anyShape()) {
                throw new CommandLine.ParameterException(spec.commandLine(), "the shape flags and --model do not go "
                        + "together: the model's file fixes its shape");
            }
            weights = dev.trilens.io.Checkpoints.load(model, loading.allowNonFinite).weights();
        } else {
            weights = Weights.init(shape.applyTo(ModelConfig.arena()), 0);
            VectorWidth.preferFor(weights.cfg.dHead());
        }
        if (what == What.serve) {
            if (clients < 1 || clients > 256 || !(seconds > 0 && seconds <= 600)) {
                throw new CommandLine.ParameterException(spec.commandLine(), "bench serve needs --clients 1..256 and "
                        + "--seconds in (0, 600], got " + clients + " and " + seconds);
            }
            // 20 timed runs suit a batch pass; a request's p99 needs thousands
            int requests = spec.commandLine().getParseResult().hasMatchedOption("--iters") ? iters : 2000;
            return new ServeBench(weights, clients, seconds, warmup, MIN_WARMUP_SECONDS, requests).run(out);
        }
        ModelConfig cfg = weights.cfg;
        int B = shape.batch != null ? shape.batch : what == What.eval ? 2500 : 512, T = cfg.nCtx();
        ShapeOptions.checkFits(spec.commandLine(), cfg, B);
        int batches = what == What.eval ? 1 : 8;
        int[] tokens = new int[batches * B * T];
        Random r = new Random(0);
        for (int i = 0; i < tokens.length; i++) {
            tokens[i] = r.nextInt(cfg.dVocab());
        }
        Runnable step;
        if (what == What.eval) {
            HookedTransformer model = new HookedTransformer(weights);
            // each pass's cache is dropped at once, as a sweep over many batches would
            step = () -> model.runWithCache(tokens, B, T, name -> true).cache().close();
        } else {
            Backprop backprop = new Backprop(cfg);
            AdamW adam = new AdamW(weights.data.length, 1e-3);
            float[] grads = new float[weights.data.length];
            int[] batch = new int[B * T];
            int[] counter = {0};
            step = () -> {
                // cycle through 8 different batches, as the peer does
                System.arraycopy(tokens, (counter[0]++ % batches) * B * T, batch, 0, B * T);
                backprop.lossAndGradients(weights, batch, B, T, grads);
                adam.step(weights.data, grads, 1e-3);
            };
        }
        int warmupRuns = warmUp(step);
        double[] ms = new double[iters];
        for (int i = 0; i < iters; i++) {
            long t0 = System.nanoTime();
            step.run();
            ms[i] = (System.nanoTime() - t0) / 1e6;
        }
        java.util.Arrays.sort(ms);
        double median = ms[iters / 2];
        String key = what == What.eval ? "eval_ms" : "train_ms_per_step";
        out.printf("trilens %s, %d threads, %dx%d, %s: median %.2f ms (min %.2f) over %d runs after %d warm-up%n",
                what, Parallel.threads(), B, T, cfg, median, ms[0], iters, warmupRuns);
        out.printf("%s=%.2f%n", key, median);
        out.flush();
        return 0;
    }

    /**
     * Runs step untimed: --warmup times, or until two windows of ten runs in a row are no faster than the best
     * window before them. One flat window is not enough: C2 compiles the kernels one by one, and a window can fall
     * between two compilations.
     */
    private int warmUp(Runnable step) {
        if (warmup != null) {
            for (int i = 0; i < warmup; i++) {
                step.run();
            }
            return warmup;
        }
        long start = System.nanoTime();
        double best = Double.MAX_VALUE;
        int runs = 0, flat = 0;
        while (true) {
            double[] window = new double[10];
            for (int i = 0; i < window.length; i++) {
                long t0 = System.nanoTime();
                step.run();
                window[i] = System.nanoTime() - t0;
            }
            runs += window.length;
            java.util.Arrays.sort(window);
            double median = window[window.length / 2];
            flat = median > 0.97 * best ? flat + 1 : 0;
            best = Math.min(best, median);
            double elapsed = (System.nanoTime() - start) / 1e9;
            if (elapsed >= MAX_WARMUP_SECONDS || (elapsed >= MIN_WARMUP_SECONDS && flat >= 2)) {
                return runs;
            }
        }
    }
}

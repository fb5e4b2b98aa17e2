package dev.trilens.cli;

import dev.trilens.model.HookedTransformer;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.Parallel;
import dev.trilens.model.Weights;
import java.io.PrintWriter;
import java.util.Random;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(name = "bench", mixinStandardHelpOptions = true,
        description = "Benchmarks on the challenge's shapes, to set beside ../shared/bench/torch_peer.py. "
                + "eval: one forward pass with a full activation cache over 2500 x 50 tokens.")
public final class BenchCommand implements Callable<Integer> {

    enum What { eval }

    @Parameters(index = "0", description = "what to time: ${COMPLETION-CANDIDATES}")
    What what;

    @Option(names = "--iters", defaultValue = "20", description = "timed repetitions (default: ${DEFAULT-VALUE})")
    int iters;

    @Option(names = "--warmup", defaultValue = "10", description = "untimed repetitions first "
            + "(default: ${DEFAULT-VALUE})")
    int warmup;

    @Option(names = "--threads", description = "worker threads (default: all cores)")
    Integer threads;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() {
        if (iters < 1 || warmup < 0) {
            throw new CommandLine.ParameterException(spec.commandLine(),
                    "--iters must be >= 1 and --warmup >= 0, got " + iters + " and " + warmup);
        }
        if (threads != null) {
            if (threads < 1) {
                throw new CommandLine.ParameterException(spec.commandLine(), "--threads must be >= 1, got " + threads);
            }
            Parallel.setThreads(threads);
        }
        PrintWriter out = spec.commandLine().getOut();
        ModelConfig cfg = ModelConfig.arena();
        HookedTransformer model = new HookedTransformer(Weights.init(cfg, 0));
        int B = 2500, T = cfg.nCtx();
        int[] tokens = new int[B * T];
        Random r = new Random(0);
        for (int i = 0; i < tokens.length; i++) {
            tokens[i] = r.nextInt(cfg.dVocab());
        }
        double[] ms = new double[iters];
        for (int i = 0; i < warmup + iters; i++) {
            long t0 = System.nanoTime();
            model.runWithCache(tokens, B, T, name -> true);
            if (i >= warmup) {
                ms[i - warmup] = (System.nanoTime() - t0) / 1e6;
            }
        }
        java.util.Arrays.sort(ms);
        double median = ms[iters / 2];
        out.printf("trilens eval, %d threads: forward with full cache over %dx%d: median %.2f ms (min %.2f) over %d "
                + "runs%n", Parallel.threads(), B, T, median, ms[0], iters);
        out.printf("eval_ms=%.2f%n", median);
        out.flush();
        return 0;
    }
}

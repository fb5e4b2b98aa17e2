package dev.trilens.train;

import dev.trilens.model.Backprop;
import dev.trilens.model.Weights;
import java.util.Arrays;

/**
 * Before a long run's first epoch: training steps on a scratch copy of the weights and a handful of sequences, until
 * the JIT has compiled the training kernels.
 *
 * <p>Why: until the JIT's optimizing compiler has compiled them, the Vector API kernels run many times slower
 * (every vector operation a call and an allocation), and they get compiled only after they have run some thousands
 * of times. Run on full batches, that made an arena run's first epoch about twice a warm one. Run on 4 sequences a
 * step, the same invocations cost a fraction, and the first epoch is within 1.5x of the next (the README's
 * figures). Nothing of it reaches the run: the weights, the optimizer's moments and the gradients it updates are
 * copies, so the run's results are those without it, bit for bit.
 *
 * <p>When to stop is read from the steps themselves: in blocks of {@link #BLOCK} steps, until three blocks in a row
 * take within 15% of one another (after at least {@link #MIN_STEPS}), or after {@link #MAX_STEPS} steps or
 * {@link #MAX_NANOS}, whichever comes first. The JIT keeps no public record of what it has compiled, and the blocks'
 * time falls by ~100x from the first to the compiled ones. Once per process: a sweep's later runs find the kernels
 * compiled.
 */
final class KernelWarmUp {
    /** Sequences a warm-up step trains on. */
    static final int SEQUENCES = 4;
    static final int BLOCK = 25;
    static final int MIN_STEPS = 200;
    static final int MAX_STEPS = 1500;
    static final long MAX_NANOS = 4_000_000_000L;
    /**
     * A run shorter than this many tokens (sequences x positions x epochs) is not warmed: the quick preset (2.4 M) is
     * over in seconds anyway, and the tests' tiny runs would only get slower; one arena epoch is 5 M.
     */
    static final long MIN_RUN_TOKENS = 5_000_000L;

    private static boolean done;

    private KernelWarmUp() {
    }

    /**
     * Warms the kernels before a run of runTokens tokens, unless it is short, has fewer than {@link #SEQUENCES}
     * sequences, or this process already did; returns whether it did.
     */
    static synchronized boolean beforeRun(long runTokens, Backprop backprop, Weights weights, double weightDecay,
                                          int[] tokens, int T) {
        if (done || runTokens < MIN_RUN_TOKENS || tokens.length < SEQUENCES * T) {
            return false;
        }
        done = true;
        run(backprop, weights, weightDecay, Arrays.copyOf(tokens, SEQUENCES * T), T);
        return true;
    }

    /** For tests: as if this process had not warmed up yet. */
    static synchronized void forgetForTests() {
        done = false;
    }

    /** The warm-up itself, on copies of weights; returns the steps it took. */
    static int run(Backprop backprop, Weights weights, double weightDecay, int[] tokens, int T) {
        Weights scratch = weights.copy();
        AdamW adam = new AdamW(scratch.data.length, weightDecay);
        float[] grads = new float[scratch.data.length];
        int B = tokens.length / T;
        long start = System.nanoTime();
        long[] blocks = new long[MAX_STEPS / BLOCK];
        int steps = 0;
        for (int block = 0; block < blocks.length; block++) {
            long t0 = System.nanoTime();
            for (int i = 0; i < BLOCK; i++, steps++) {
                backprop.lossAndGradients(scratch, tokens, B, T, grads);
                adam.step(scratch.data, grads, 1e-3);
            }
            long end = System.nanoTime();
            blocks[block] = end - t0;
            if (end - start > MAX_NANOS || steps >= MIN_STEPS && settled(blocks, block)) {
                break;
            }
        }
        return steps;
    }

    /** Whether the last three blocks up to block took within 15% of one another. */
    static boolean settled(long[] blocks, int block) {
        if (block < 2) {
            return false;
        }
        long lo = Long.MAX_VALUE, hi = 0;
        for (int b = block - 2; b <= block; b++) {
            lo = Math.min(lo, blocks[b]);
            hi = Math.max(hi, blocks[b]);
        }
        return hi <= lo * 1.15;
    }
}

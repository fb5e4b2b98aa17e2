package dev.trilens.model.kernels;

/**
 * Chooses the kernels, once per process: the Vector API ones when the jdk.incubator.vector module is present (the
 * launcher, the tests and the benchmarks add it), the scalar reference otherwise, with -Dtrilens.scalar=true, or for
 * a short job.
 *
 * <p>Why short jobs run the scalar reference: until the JIT's optimizing compiler has compiled them, the Vector API
 * kernels are far slower than scalar code (every vector operation a call and an allocation), and compiling them
 * takes seconds of CPU (-XX:+CITime). A job of a few forward passes is over before that pays off: `evaluate` on the
 * challenge's 2500 sequences takes about half as long on the scalar ones (the cold start figures in
 * docs/performance.md). So a command whose whole kernel work it knows in advance (evaluate, predict, patch, extract)
 * calls {@link #preferForWork} before the first kernel runs, and below {@link #SHORT_JOB_MULTIPLY_ADDS} the process
 * runs the scalar reference. Results differ between the two in the last bits only (other summation orders), and the
 * same command on the same inputs always makes the same choice. {@code -Dtrilens.kernels=vector} or {@code scalar}
 * overrides it (the tests pin it, so that which test runs first does not choose for all of them).
 */
public final class Kernels {
    /** Whether the Vector API kernels can run: the module is present and not switched off. */
    public static final boolean VECTOR = ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent()
            && !Boolean.getBoolean("trilens.scalar") && !override().equals("scalar");

    /**
     * Multiply-adds of a whole job below which the scalar reference finishes first: 2e9 is ~6,000 sequences of the
     * challenge's shape in a forward pass, short of where the two kernels take as long.
     */
    public static final double SHORT_JOB_MULTIPLY_ADDS = 2e9;

    private static volatile boolean shortJob;
    private static volatile boolean chosen;

    private Kernels() {
    }

    /**
     * Before the first kernel runs: the job's whole kernel work, in multiply-adds. A later call, or one after the
     * kernels were chosen, changes nothing.
     */
    public static synchronized void preferForWork(double multiplyAdds) {
        if (!chosen) {
            shortJob = multiplyAdds < SHORT_JOB_MULTIPLY_ADDS;
        }
    }

    /** What is wrong with -Dtrilens.kernels, or null when it is unset, vector or scalar. */
    public static String overrideProblem() {
        String v = override();
        if (v.isEmpty() || v.equals("vector") || v.equals("scalar")) {
            return null;
        }
        return "-Dtrilens.kernels=" + v + " is no kernel choice; expected vector or scalar (or no such property)";
    }

    /** -Dtrilens.kernels, "" when unset. */
    private static String override() {
        return System.getProperty("trilens.kernels", "");
    }

    /** The kernels everything runs with; the first call fixes the choice. */
    public static TensorOps ops() {
        return Selected.OPS;
    }

    /** Loaded at the first {@link #ops()}, so the choice waits for the command's {@link #preferForWork}. */
    private static final class Selected {
        static final TensorOps OPS = choose();
    }

    private static synchronized TensorOps choose() {
        chosen = true;
        boolean vector = VECTOR && (override().equals("vector") || !shortJob);
        return vector ? vector() : new ScalarOps();
    }

    /** The Vector API kernels; only to be called with the module present (a separate method, so nothing else loads them). */
    public static TensorOps vector() {
        return new VectorOps();
    }

    /** The scalar reference. */
    public static TensorOps scalar() {
        return new ScalarOps();
    }
}

package dev.trilens.model.kernels;

/**
 * The width of the Vector API kernels' vectors, chosen once per process: the machine's widest unless the model a
 * command runs has a d_head that is a whole number of 8-float vectors but not of the widest (d_head 8 or 24 on an
 * AVX-512 machine's 16 floats), which then runs on 8-float vectors.
 *
 * <p>Why per process: the attention kernels need d_head to be whole vectors, and otherwise fall back to the scalar
 * reference (a d_head 8 training step took 26.3 ms against 12.1 ms on 8-float vectors: the README's 5 rounds on a
 * 2-core AMD EPYC); but a process cannot mix widths. With kernels of two widths in one JVM, Java 17's JIT stopped
 * turning the Vector API into vector instructions in the wider matmul kernels (the step became over ten times slower:
 * every vector operation a call and an allocation), presumably because the two vector classes share the Vector API's
 * own methods and their type profiles. So a command calls {@link #preferFor} with its model's d_head before the first kernel runs, and the width
 * is then fixed; a process running models of several d_heads (a sweep) keeps the widest. The system property
 * {@code trilens.vectorBits} overrides the choice: 256 for 8-float vectors, any other number for the widest (the
 * tests pin it, so that which test runs first does not choose the width of all of them).
 *
 * <p>Results depend on the width (the sums run in other orders), so the same model and command on the same machine
 * always choose the same one. This class touches no Vector API class unless the module is present.
 */
public final class VectorWidth {
    private VectorWidth() {
    }

    private static final int MIN_BITS = 256;
    private static volatile int preferredBits;
    private static volatile boolean fixed;

    /**
     * Before the first kernel runs: prefer the width for a model of this d_head. A later call, or one after the
     * kernels were chosen, changes nothing.
     */
    public static synchronized void preferFor(int dHead) {
        if (fixed || preferredBits != 0 || !ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent()) {
            return;
        }
        preferredBits = bitsFor(dHead, jdk.incubator.vector.FloatVector.SPECIES_PREFERRED.vectorBitSize());
    }

    /**
     * The width for a d_head on a machine whose widest float vectors have widestBits: the widest, unless d_head is a
     * whole number of 256-bit vectors (8 floats) but not of the widest ones.
     */
    static int bitsFor(int dHead, int widestBits) {
        int lanes = widestBits / Float.SIZE, narrowLanes = MIN_BITS / Float.SIZE;
        boolean narrowOnly = widestBits > MIN_BITS && dHead % narrowLanes == 0 && dHead % lanes != 0;
        return narrowOnly ? MIN_BITS : widestBits;
    }

    /** The species the kernels use; fixes the choice (called once, when the kernels are first loaded). */
    static synchronized jdk.incubator.vector.VectorSpecies<Float> species() {
        fixed = true;
        jdk.incubator.vector.VectorSpecies<Float> widest = jdk.incubator.vector.FloatVector.SPECIES_PREFERRED;
        int bits = Integer.getInteger("trilens.vectorBits", preferredBits == 0 ? widest.vectorBitSize()
                : preferredBits);
        if (bits == MIN_BITS && widest.vectorBitSize() > MIN_BITS) {
            return jdk.incubator.vector.FloatVector.SPECIES_256;
        }
        return widest;
    }
}

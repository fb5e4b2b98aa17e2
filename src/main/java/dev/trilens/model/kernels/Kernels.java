package dev.trilens.model.kernels;

/**
 * Chooses the kernels: the Vector API ones when the jdk.incubator.vector module is present (the launcher, the
 * tests and the benchmarks add it), the scalar reference otherwise or with -Dtrilens.scalar=true.
 */
public final class Kernels {
    /** Whether the Vector-API kernels run. */
    public static final boolean VECTOR = ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent()
            && !Boolean.getBoolean("trilens.scalar");

    private static final TensorOps SELECTED = VECTOR ? vector() : new ScalarOps();

    private Kernels() {
    }

    /** The kernels everything runs with. */
    public static TensorOps ops() {
        return SELECTED;
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

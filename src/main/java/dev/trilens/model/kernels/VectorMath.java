package dev.trilens.model.kernels;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * What every vector kernel shares: the species, per-thread scratch, and exp and lane sums that give the same
 * result compiled or interpreted.
 */
final class VectorMath {
    private VectorMath() {
    }

    /** The kernels' float vectors: the machine's widest, or 8 floats where {@link VectorWidth} chose them. */
    static final VectorSpecies<Float> F = VectorWidth.species();

    /** Per-thread scratch: K or V transposed to [Dh, T], and for the scores Q of one head [T, Dh]. */
    private static final ThreadLocal<float[]> FLOAT_SCRATCH = ThreadLocal.withInitial(() -> new float[0]);

    static float[] scratch(int n) {
        float[] s = FLOAT_SCRATCH.get();
        if (s.length < n) {
            s = new float[n];
            FLOAT_SCRATCH.set(s);
        }
        return s;
    }

    // Results must not depend on whether a method runs compiled or interpreted: the JIT intrinsics for EXP and for
    // reduceLanes(ADD) round differently from their Java fallbacks, which broke run-to-run reproducibility. So exp is
    // built from exactly-rounded lane operations, and sums across lanes from lanewise adds in a fixed order (hsum).

    private static final float LOG2E = 1.44269504088896341f;
    private static final float LN2_HI = 0.693359375f;
    private static final float LN2_LO = -2.12194440e-4f;
    private static final float ROUNDER = 12582912f; // 1.5 * 2^23: adding and subtracting it rounds to an integer
    private static final float EXP_MIN = -87.3f, EXP_MAX = 88.7f;

    /**
     * Softmax terms e^(x - max) below e^-32 (about 1e-14 of the row's largest) are set to 0. Below float32's
     * resolution of a sum that holds a term of 1 they change no result, and left in, they and everything multiplied
     * by them become denormals, each costing the CPU a microcode assist: a trained model, whose attention and
     * predictions are nearly one-hot, trained 40% slower per step than a fresh one.
     */
    static final float SOFTMAX_FLOOR = -32f;

    /** e^x per lane (Cephes expf, ~1 ulp); exactly 0 below EXP_MIN, including -inf. */
    static FloatVector exp(FloatVector x) {
        return exp(x, EXP_MIN);
    }

    /** exp(x), and exactly 0 below floor (>= EXP_MIN). */
    static FloatVector exp(FloatVector x, float floor) {
        var tooSmall = x.compare(VectorOperators.LT, floor);
        FloatVector c = x.max(EXP_MIN).min(EXP_MAX);
        FloatVector n = c.mul(LOG2E).add(ROUNDER).sub(ROUNDER);
        FloatVector r = n.fma(FloatVector.broadcast(F, -LN2_HI), c);
        r = n.fma(FloatVector.broadcast(F, -LN2_LO), r);
        FloatVector p = FloatVector.broadcast(F, 1.9875691500e-4f);
        p = p.fma(r, FloatVector.broadcast(F, 1.3981999507e-3f));
        p = p.fma(r, FloatVector.broadcast(F, 8.3334519073e-3f));
        p = p.fma(r, FloatVector.broadcast(F, 4.1665795894e-2f));
        p = p.fma(r, FloatVector.broadcast(F, 1.6666665459e-1f));
        p = p.fma(r, FloatVector.broadcast(F, 5.0000001201e-1f));
        p = p.fma(r.mul(r), r).add(1f);
        // 2^n without a float->int conversion (not intrinsified in Java 17): n + 127 + 2^23 holds n + 127 in its
        // low mantissa bits, and shifting those into the exponent field drops everything else
        FloatVector twoN = n.add(127f + 8388608f).reinterpretAsInts().lanewise(VectorOperators.LSHL, 23)
                .reinterpretAsFloats();
        return p.mul(twoN).blend(0f, tooSmall);
    }

    /** Rotations by half, a quarter, ... of the lanes, for hsum; separate constants so the JIT sees each one. */
    private static final VectorShuffle<Float> ROT_HALF = rotation(2), ROT_QUARTER = rotation(4);
    private static final VectorShuffle<Float> ROT_EIGHTH = rotation(8), ROT_SIXTEENTH = rotation(16);

    private static VectorShuffle<Float> rotation(int fraction) {
        return VectorShuffle.iota(F, Math.max(1, F.length() / fraction), 1, true);
    }

    /**
     * Sum of the lanes in a fixed order, the same compiled or interpreted (unlike reduceLanes(ADD), whose intrinsic
     * and fallback add in different orders): pairwise, by adding the vector to itself rotated by half its width,
     * then a quarter, and so on, so lane 0 ends up with the sum after log2(lanes) dependent adds.
     */
    static float hsum(FloatVector v) {
        int L = F.length();
        v = v.add(v.rearrange(ROT_HALF));
        if (L >= 4) {
            v = v.add(v.rearrange(ROT_QUARTER));
        }
        if (L >= 8) {
            v = v.add(v.rearrange(ROT_EIGHTH));
        }
        if (L >= 16) {
            v = v.add(v.rearrange(ROT_SIXTEENTH));
        }
        if (L > 16) {
            float[] lanes = v.toArray(); // wider than any x86 vector today; correct, not fast
            float sum = 0f;
            for (int i = 0; i < L / 16; i++) {
                sum += lanes[i];
            }
            return sum;
        }
        return v.lane(0);
    }

    /** A LayerNorm row's scale, sqrt(var + eps), given its mean: lanes over d_model, hsum, a scalar tail. */
    static float layerNormRowScale(float[] inp, int x_t, float mean, int D) {
        int L = F.length(), i = 0;
        FloatVector meanV = FloatVector.broadcast(F, mean), acc = FloatVector.zero(F);
        for (; i + L <= D; i += L) {
            FloatVector c = FloatVector.fromArray(F, inp, x_t + i).sub(meanV);
            acc = c.fma(c, acc);
        }
        float var = hsum(acc);
        for (; i < D; i++) {
            float c = inp[x_t + i] - mean;
            var += c * c;
        }
        return (float) Math.sqrt(var / D + TensorOps.LN_EPS);
    }

    /** A LayerNorm row normalized: out = (x - mean) * rstd * w + b. */
    static void layerNormRowApply(float[] out, int o_t, float[] inp, int x_t, float mean, float rstd, float[] w,
                                  int wOff, float[] b, int bOff, int D) {
        int L = F.length(), i = 0;
        for (; i + L <= D; i += L) {
            FloatVector.fromArray(F, inp, x_t + i).sub(mean).mul(rstd).mul(FloatVector.fromArray(F, w, wOff + i))
                    .add(FloatVector.fromArray(F, b, bOff + i)).intoArray(out, o_t + i);
        }
        for (; i < D; i++) {
            out[o_t + i] = (inp[x_t + i] - mean) * rstd * w[wOff + i] + b[bOff + i];
        }
    }

    /**
     * Sum of a[off..off+n): per-lane sums, hsum, then a scalar tail. Here rather than in VectorOps, whose methods the
     * launcher keeps from being inlined (each kernel compiled on its own): a row's sum is a few vector adds, and as a
     * call per row JFR put 5% of a LayerNorm model's training step in it.
     */
    static float sum(float[] a, int off, int n) {
        int L = F.length(), i = 0;
        FloatVector acc = FloatVector.zero(F);
        for (; i + L <= n; i += L) {
            acc = acc.add(FloatVector.fromArray(F, a, off + i));
        }
        float s = hsum(acc);
        for (; i < n; i++) {
            s += a[off + i];
        }
        return s;
    }
}

package dev.trilens.model.kernels;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.Arrays;
import java.util.Random;
import java.util.stream.Stream;
import jdk.incubator.vector.FloatVector;
import org.assertj.core.data.Offset;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Every operation of {@link TensorOps} on both implementations, against the math written out in double precision
 * (the oracles at the bottom), on shapes with and without vector tails: heads of a whole number of vectors and not,
 * sequences shorter than a vector, the challenge's 50.
 */
class KernelsTest {
    private static final int LANES = FloatVector.SPECIES_PREFERRED.length();
    private final Random rng = new Random(42);

    /** n standard normal draws from rng, in order. */
    private double[] gaussians(int n) {
        double[] v = new double[n];
        for (int i = 0; i < n; i++) {
            v[i] = rng.nextGaussian();
        }
        return v;
    }

    static Stream<Arguments> both() {
        return Stream.of(Arguments.of("scalar", Kernels.scalar()), Arguments.of("vector", Kernels.vector()));
    }

    /** Both implementations crossed with sequence lengths and head widths. */
    static Stream<Arguments> attentionShapes() {
        int[] lengths = {5, 16, 21, 50};
        int[] widths = {LANES, 2 * LANES, 12};
        return both().flatMap(impl -> Arrays.stream(lengths).boxed().flatMap(T -> Arrays.stream(widths).boxed()
                .map(Dh -> Arguments.of(impl.get()[0], impl.get()[1], T, Dh))));
    }

    private float[] random(int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) rng.nextGaussian();
        }
        return a;
    }

    private static void assertClose(float[] actual, double[] expected, double tol) {
        assertThat(actual).hasSize(expected.length);
        for (int i = 0; i < expected.length; i++) {
            if (Double.isInfinite(expected[i])) {
                assertThat((double) actual[i]).as("index %d", i).isEqualTo(expected[i]);
                continue;
            }
            assertThat((double) actual[i]).as("index %d", i)
                    .isCloseTo(expected[i], Offset.offset(tol * (1 + Math.abs(expected[i]))));
        }
    }

    private static double[] plus(float[] base, double[] delta) {
        double[] out = new double[delta.length];
        for (int i = 0; i < out.length; i++) {
            out[i] = base[i] + delta[i];
        }
        return out;
    }

    @Test
    void largeAndSmallRegisterTilesGiveIdenticalProducts() {
        // the tiling is chosen by the machine's widest vectors (VectorMatmul.WIDE_REGISTERS), so each machine runs
        // only one of them otherwise; both must produce the same fma chain per output, bit for bit
        java.util.Random r = new java.util.Random(7);
        // widths of 1 to 13 vectors of 16: five-vector groups, four-vector groups where a single one would be left
        // (6, 8, 9, 11, 13), pairs and single vectors; row counts not a multiple of the tiles' rows
        for (int[] shape : new int[][] {{50, 32, 48}, {50, 32, 80}, {17, 20, 32}, {8, 5, 16 * 5}, {3, 7, 16},
                {13, 9, 16 * 4}, {14, 11, 16 * 6}, {15, 6, 16 * 8}, {9, 10, 16 * 9}, {10, 3, 16 * 11},
                {7, 12, 16 * 13}}) {
            int T = shape[0], C = shape[1], OC = shape[2] / LANES * LANES;
            if (OC == 0) {
                continue;
            }
            float[] inp = new float[T * C], w = new float[C * OC], bias = new float[OC];
            for (float[] a : new float[][] {inp, w, bias}) {
                for (int i = 0; i < a.length; i++) {
                    a[i] = (float) r.nextGaussian();
                }
            }
            float[] wide = new float[T * OC], small = new float[T * OC];
            VectorMatmul.matmulForwardTiled(wide, inp, w, bias, T, C, OC, true);
            VectorMatmul.matmulForwardTiled(small, inp, w, bias, T, C, OC, false);
            assertThat(small).as("T=%d C=%d OC=%d", T, C, OC).containsExactly(wide);
            double[] expected = new double[T * OC];
            for (int t = 0; t < T; t++) {
                for (int o = 0; o < OC; o++) {
                    double acc = bias[o];
                    for (int c = 0; c < C; c++) {
                        acc += (double) inp[t * C + c] * w[c * OC + o];
                    }
                    expected[t * OC + o] = acc;
                }
            }
            assertClose(wide, expected, 1e-4);
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("both")
    void threeProductsOfOneInputEqualThreeSingleOnes(String name, TensorOps ops) {
        // Q, K and V run as one call (matmulForward3, and matmulBackwardWeight3 for their gradients), together in one
        // tile where a head is one vector wide: each output must be the single product's fma chain, bit for bit. Row
        // counts around the six-row tile, widths of one vector (run together) and others (run one by one).
        for (int[] shape : new int[][] {{50, 32, LANES}, {49, 32, LANES}, {6, 5, LANES}, {13, 20, LANES},
                {5, 7, LANES}, {1, 3, LANES}, {50, 32, 2 * LANES}, {11, 9, 12}}) {
            int T = shape[0], C = shape[1], OC = shape[2];
            float[] inp = random(T * C), w = random(5 + 3 * C * OC), bias = random(2 + 3 * OC);
            int wQ = 5, wK = wQ + C * OC, wV = wK + C * OC, bQ = 2, bK = bQ + OC, bV = bK + OC;
            float[] q = new float[T * OC], k = new float[T * OC + 3], v = new float[T * OC];
            ops.matmulForward3(q, 0, k, 3, v, 0, inp, 0, w, wQ, wK, wV, bias, bQ, bK, bV, T, C, OC);
            float[] expected = new float[T * OC];
            String shapeName = "T=" + T + " C=" + C + " OC=" + OC;
            ops.matmulForward(expected, 0, inp, 0, w, wQ, bias, bQ, T, C, OC);
            assertThat(q).as("Q, %s", shapeName).containsExactly(expected);
            ops.matmulForward(expected, 0, inp, 0, w, wK, bias, bK, T, C, OC);
            assertThat(Arrays.copyOfRange(k, 3, k.length)).as("K, %s", shapeName).containsExactly(expected);
            ops.matmulForward(expected, 0, inp, 0, w, wV, bias, bV, T, C, OC);
            assertThat(v).as("V, %s", shapeName).containsExactly(expected);

            float[] dq = random(T * OC), dk = random(T * OC), dv = random(T * OC);
            float[] dwStart = random(3 * C * OC);
            float[] together = dwStart.clone(), oneByOne = dwStart.clone();
            ops.matmulBackwardWeight3(together, 0, C * OC, 2 * C * OC, dq, 0, dk, 0, dv, 0, inp, 0, T, C, OC);
            ops.matmulBackwardWeight(oneByOne, 0, dq, 0, inp, 0, T, C, OC);
            ops.matmulBackwardWeight(oneByOne, C * OC, dk, 0, inp, 0, T, C, OC);
            ops.matmulBackwardWeight(oneByOne, 2 * C * OC, dv, 0, inp, 0, T, C, OC);
            assertThat(together).as("weight gradients, %s", shapeName).containsExactly(oneByOne);
            double[] dwQ = new double[C * OC];
            for (int c = 0; c < C; c++) {
                for (int o = 0; o < OC; o++) {
                    double acc = dwStart[c * OC + o];
                    for (int t = 0; t < T; t++) {
                        acc += (double) inp[t * C + c] * dq[t * OC + o];
                    }
                    dwQ[c * OC + o] = acc;
                }
            }
            assertClose(Arrays.copyOf(together, C * OC), dwQ, 1e-4);
        }
    }

    @Test
    void vectorKernelsAreInUse() {
        // the build and launcher pass --add-modules jdk.incubator.vector; without it everything runs scalar
        assertThat(Kernels.VECTOR).isTrue();
        assertThat(Kernels.ops()).isInstanceOf(VectorOps.class);
        assertThat(Kernels.ops().lanes()).isEqualTo(LANES);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("both")
    void matmulsMatchTheMath(String name, TensorOps ops) {
        // whole vectors and not; row counts with 8- and 4-row tiles, pairs and single rows left over; narrower than
        // a vector
        int[][] shapes = {{50, 32, 75}, {7, 5, 16}, {3, 16, 33}, {1, 20, 32}, {50, 32, 80}, {11, 21, 48}, {50, 16, 32},
            {3, 20, 16}, {49, 32, 80}, {6, 16, 112}, {4, 8, 96}, {5, 7, 3}};
        for (int[] s : shapes) {
            int T = s[0], C = s[1], OC = s[2];
            float[] inp = random(T * C), w = random(C * OC), bias = random(OC), dout = random(T * OC);
            float[] out = new float[T * OC];
            ops.matmulForward(out, 0, inp, 0, w, 0, bias, 0, T, C, OC);
            assertClose(out, Oracle.matmul(inp, C, w, bias, T, C, OC), 1e-5);
            ops.matmulForward(out, 0, inp, 0, w, 0, null, 0, T, C, OC);
            assertClose(out, Oracle.matmul(inp, C, w, null, T, C, OC), 1e-5);

            float[] dw = random(C * OC);
            double[] dwWant = plus(dw, Oracle.matmulBackwardWeight(dout, inp, C, T, C, OC));
            ops.matmulBackwardWeight(dw, 0, dout, 0, inp, 0, T, C, OC);
            assertClose(dw, dwWant, 1e-5);

            float[] wT = new float[OC * C];
            ops.transpose(wT, 0, w, 0, C, OC);
            for (int c = 0; c < C; c++) {
                for (int o = 0; o < OC; o++) {
                    assertThat(wT[o * C + c]).isEqualTo(w[c * OC + o]);
                }
            }
            float[] din = random(T * C);
            double[] dinWant = plus(din, Oracle.matmulBackwardInput(dout, OC, w, T, C, OC));
            ops.matmulBackwardInput(din, 0, dout, 0, wT, 0, T, C, OC);
            assertClose(din, dinWant, 1e-5);

            float[] dbias = random(OC);
            double[] dbiasWant = new double[OC];
            for (int o = 0; o < OC; o++) {
                dbiasWant[o] = dbias[o];
                for (int t = 0; t < T; t++) {
                    dbiasWant[o] += dout[t * OC + o];
                }
            }
            ops.biasBackward(dbias, 0, dout, 0, T, OC);
            assertClose(dbias, dbiasWant, 1e-5);
        }
    }

    /** The strided kernels read only the first C columns of each padded row: garbage in the padding changes nothing. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("both")
    void stridedMatmulsIgnoreThePadding(String name, TensorOps ops) {
        for (int width : new int[] {2 * LANES, 20}) {
            int T = 50, C = 20, stride = 32;
            float[] padded = random(T * stride);
            float[] w = random(C * width), bias = random(width), dout = random(T * width);
            float[] out = new float[T * width];
            ops.matmulForwardStrided(out, 0, padded, 0, stride, w, 0, bias, 0, T, C, width);
            assertClose(out, Oracle.matmul(padded, stride, w, bias, T, C, width), 1e-5);

            float[] dw = random(C * width);
            double[] dwWant = plus(dw, Oracle.matmulBackwardWeight(dout, padded, stride, T, C, width));
            ops.matmulBackwardWeightStrided(dw, 0, dout, 0, padded, 0, stride, T, C, width);
            assertClose(dw, dwWant, 1e-5);

            // dinp[T, width] += d[T, C of stride] @ w2^T, with w2 [width, C] given transposed as wT [C, width]
            float[] wT = random(C * width), din = random(T * width);
            float[] w2 = new float[width * C];
            ops.transpose(w2, 0, wT, 0, C, width);
            double[] dinWant = plus(din, Oracle.matmulBackwardInput(padded, stride, w2, T, width, C));
            ops.matmulBackwardInputStrided(din, 0, padded, 0, stride, wT, 0, T, width, C);
            assertClose(din, dinWant, 1e-5);
        }
    }

    @ParameterizedTest(name = "{0} T={2} Dh={3}")
    @MethodSource("attentionShapes")
    void attentionMatchesTheMath(String name, TensorOps ops, int T, int Dh) {
        int H = 2, n = T * H * Dh;
        float[] q = random(n), k = random(n), v = random(n), dz = random(n);
        float[] scores = new float[H * T * T];
        ops.attnScoresForward(scores, 0, q, 0, k, 0, T, H, Dh);
        assertClose(scores, Oracle.scores(q, k, T, H, Dh), 1e-5);

        float[] pattern = new float[H * T * T];
        ops.softmaxForward(pattern, 0, scores, 0, T, H);
        assertClose(pattern, Oracle.softmax(scores, T, H), 1e-6);
        assertThat(pattern[1]).isZero(); // row 0 attends only to itself

        float[] z = new float[n];
        Arrays.fill(z, Float.NaN); // written, not added
        ops.attnValuesForward(z, 0, pattern, 0, v, 0, T, H, Dh);
        assertClose(z, Oracle.values(pattern, v, T, H, Dh), 1e-5);

        float[] dpattern = new float[H * T * T], dv = random(n);
        Arrays.fill(dpattern, Float.NaN); // written, not added
        double[] dvWant = plus(dv, Oracle.valuesBackwardDv(dz, pattern, T, H, Dh));
        ops.attnValuesBackward(dpattern, 0, dv, 0, dz, 0, pattern, 0, v, 0, T, H, Dh);
        assertClose(dpattern, Oracle.valuesBackwardDpattern(dz, v, T, H, Dh), 1e-5);
        assertClose(dv, dvWant, 1e-5);

        float[] dscores = random(H * T * T);
        double[] dscoresWant = plus(dscores, Oracle.softmaxBackward(dpattern, pattern, T, H));
        ops.softmaxBackward(dscores, 0, dpattern, 0, pattern, 0, T, H);
        assertClose(dscores, dscoresWant, 1e-5);

        float[] dq = random(n), dk = random(n);
        double[][] dqk = Oracle.scoresBackward(dscores, q, k, T, H, Dh);
        double[] dqWant = plus(dq, dqk[0]), dkWant = plus(dk, dqk[1]);
        ops.attnScoresBackward(dq, 0, dk, 0, dscores, 0, q, 0, k, 0, T, H, Dh);
        assertClose(dq, dqWant, 1e-4);
        assertClose(dk, dkWant, 1e-4);
    }

    /** [h][j][i] of a [h][i][j] array. */
    private static double[] keyMajor(float[] queryMajor, int T, int H) {
        double[] t = new double[queryMajor.length];
        for (int h = 0; h < H; h++) {
            for (int i = 0; i < T; i++) {
                for (int j = 0; j < T; j++) {
                    t[(h * T + j) * T + i] = queryMajor[(h * T + i) * T + j];
                }
            }
        }
        return t;
    }

    private static float[] toFloats(double[] a) {
        float[] f = new float[a.length];
        for (int i = 0; i < a.length; i++) {
            f[i] = (float) a[i];
        }
        return f;
    }

    /** Each key-major kernel gives the query-major result transposed, and writes every entry it owns. */
    @ParameterizedTest(name = "{0} T={2} Dh={3}")
    @MethodSource("attentionShapes")
    void keyMajorAttentionAgreesWithQueryMajor(String name, TensorOps ops, int T, int Dh) {
        int H = 2, n = T * H * Dh;
        float[] q = random(n), k = random(n), v = random(n), dz = random(n);
        for (int i = 0; i < q.length; i++) {
            q[i] *= 8; // sharper patterns than uniform
        }
        float[] s = new float[H * T * T], p = new float[H * T * T];
        ops.attnScoresForward(s, 0, q, 0, k, 0, T, H, Dh);
        ops.softmaxForward(p, 0, s, 0, T, H);
        float[] sT = new float[H * T * T], pT = new float[H * T * T];
        Arrays.fill(sT, Float.NaN);
        Arrays.fill(pT, Float.NaN);
        ops.attnScoresForwardKeyMajor(sT, 0, q, 0, k, 0, T, H, Dh);
        ops.softmaxForwardKeyMajor(pT, 0, sT, 0, T, H);
        assertClose(sT, keyMajor(s, T, H), 1e-5);
        assertClose(pT, keyMajor(p, T, H), 1e-5);

        float[] z = new float[n], zT = new float[n];
        ops.attnValuesForward(z, 0, p, 0, v, 0, T, H, Dh);
        ops.attnValuesForwardKeyMajor(zT, 0, pT, 0, v, 0, T, H, Dh);
        assertClose(zT, Oracle.widen(z), 1e-5);

        float[] dp = new float[H * T * T], dv = new float[n];
        ops.attnValuesBackward(dp, 0, dv, 0, dz, 0, p, 0, v, 0, T, H, Dh);
        float[] dpT = new float[H * T * T], dvT = new float[n];
        Arrays.fill(dpT, Float.NaN);
        ops.attnValuesBackwardKeyMajor(dpT, 0, dvT, 0, dz, 0, pT, 0, v, 0, T, H, Dh);
        assertClose(dpT, keyMajor(dp, T, H), 1e-5);
        assertClose(dvT, Oracle.widen(dv), 1e-5);

        float[] ds = new float[H * T * T], dsT = new float[H * T * T];
        ops.softmaxBackward(ds, 0, dp, 0, p, 0, T, H);
        Arrays.fill(dsT, Float.NaN); // written, not added
        ops.softmaxBackwardKeyMajor(dsT, 0, dpT, 0, pT, 0, T, H);
        assertClose(dsT, keyMajor(ds, T, H), 1e-5);

        float[] dq = new float[n], dk = new float[n], dqT = new float[n], dkT = new float[n];
        ops.attnScoresBackward(dq, 0, dk, 0, ds, 0, q, 0, k, 0, T, H, Dh);
        ops.attnScoresBackwardKeyMajor(dqT, 0, dkT, 0, toFloats(keyMajor(ds, T, H)), 0, q, 0, k, 0, T, H, Dh);
        assertClose(dqT, Oracle.widen(dq), 1e-4);
        assertClose(dkT, Oracle.widen(dk), 1e-4);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("both")
    void layerNormMatchesTheMath(String name, TensorOps ops) {
        for (int D : new int[] {12, 2 * LANES + 3, 32}) { // shorter than a vector on AVX-512, a tail, whole vectors
            int T = 7;
            float[] x = random(T * D), w = random(D), b = random(D), dout = random(T * D);
            float[] out = new float[T * D], scale = new float[T];
            ops.layerNormForward(out, 0, scale, 0, x, 0, w, 0, b, 0, T, D);
            // the forward in one call (a hookless pass) and in its two halves (a hook on hook_scale between them)
            // must agree bit for bit
            float[] outInHalves = new float[T * D], scaleInHalves = new float[T];
            ops.layerNormScale(scaleInHalves, 0, x, 0, T, D);
            ops.layerNormApply(outInHalves, 0, scaleInHalves, 0, x, 0, w, 0, b, 0, T, D);
            assertThat(scale).as("D=%d", D).containsExactly(scaleInHalves);
            assertThat(out).as("D=%d", D).containsExactly(outInHalves);
            double[][] want = Oracle.layerNorm(x, w, b, dout, T, D);
            assertClose(out, want[0], 1e-5);
            assertClose(scale, want[1], 1e-5);
            float[] dx = random(T * D), dw = random(D), db = random(D);
            double[] dxWant = plus(dx, want[2]), dwWant = plus(dw, want[3]), dbWant = plus(db, want[4]);
            ops.layerNormBackward(dx, 0, dw, 0, db, 0, dout, 0, x, 0, scale, 0, w, 0, T, D);
            assertClose(dx, dxWant, 1e-4);
            assertClose(dw, dwWant, 1e-4);
            assertClose(db, dbWant, 1e-5);
        }
    }

    /** Denormals cost a microcode assist per operation; the vector kernels' sharp softmaxes must not produce them. */
    @Test
    void sharpSoftmaxesProduceNoDenormals() {
        TensorOps ops = Kernels.vector();
        int T = 50, H = 1, V = 75, Vp = 80;
        float[] scores = new float[T * T], logits = new float[T * Vp];
        Random r = new Random(7);
        for (int i = 0; i < T; i++) {
            for (int j = 0; j < T; j++) {
                scores[i * T + j] = j <= i ? -95f * r.nextFloat() : Float.NEGATIVE_INFINITY; // spreads past e^-87
            }
            for (int v = 0; v < Vp; v++) {
                logits[i * Vp + v] = v < V ? 100f - 95f * r.nextFloat() : Float.NEGATIVE_INFINITY;
            }
        }
        float[] pattern = new float[T * T], patternT = new float[T * T];
        ops.softmaxForward(pattern, 0, scores, 0, T, H);
        ops.softmaxForwardKeyMajor(patternT, 0, toFloats(keyMajor(scores, T, H)), 0, T, H);
        float[] dlogits = new float[T * Vp];
        int[] tokens = new int[T];
        ops.crossEntropyForwardBackward(dlogits, logits, tokens, 0, 1f / (512 * 49), T, V, Vp);
        for (float[] a : new float[][] {pattern, patternT, dlogits}) {
            for (float x : a) {
                assertThat(x == 0f || Math.abs(x) >= Float.MIN_NORMAL).as("%s is a denormal", x).isTrue();
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("both")
    void crossEntropyMatchesTheMath(String name, TensorOps ops) {
        int T = 6, V = 75;
        int[] tokens = {3, 74, 0, 12, 40, 5};
        for (int Vp : new int[] {80, 75}) { // padded as the trainer pads, and not
            float[] logits = random(T * Vp);
            for (int t = 0; t < T; t++) {
                Arrays.fill(logits, t * Vp + V, (t + 1) * Vp, Float.NEGATIVE_INFINITY);
            }
            float[] dlogits = new float[T * Vp];
            Arrays.fill(dlogits, Float.NaN); // written, padding included
            double loss = ops.crossEntropyForwardBackward(dlogits, logits, tokens, 1, 0.5f, T - 1, V, Vp);
            double want = 0;
            double[] dWant = new double[T * Vp];
            for (int t = 0; t < T - 1; t++) {
                double max = Double.NEGATIVE_INFINITY, sum = 0;
                for (int i = 0; i < V; i++) {
                    max = Math.max(max, logits[t * Vp + i]);
                }
                for (int i = 0; i < V; i++) {
                    sum += Math.exp(logits[t * Vp + i] - max);
                }
                want -= logits[t * Vp + tokens[t + 1]] - max - Math.log(sum);
                for (int i = 0; i < V; i++) {
                    dWant[t * Vp + i] = 0.5 * Math.exp(logits[t * Vp + i] - max) / sum - (i == tokens[t + 1] ? 0.5 : 0);
                }
            }
            assertThat(loss).isCloseTo(want, Offset.offset(1e-4));
            assertClose(Arrays.copyOf(dlogits, (T - 1) * Vp), Arrays.copyOf(dWant, (T - 1) * Vp), 1e-5);
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("both")
    void crossEntropyOfManyRowsStaysFinite(String name, TensorOps ops) {
        // uniform rows: each sum of exps is 75, and 75^400 overflows a double unless the product is folded into logs
        int rows = 400, V = 75, Vp = 80;
        float[] logits = new float[rows * Vp];
        for (int t = 0; t < rows; t++) {
            Arrays.fill(logits, t * Vp + V, (t + 1) * Vp, Float.NEGATIVE_INFINITY);
        }
        int[] targets = new int[rows];
        double loss = ops.crossEntropyForwardBackward(new float[rows * Vp], logits, targets, 0, 1f, rows, V, Vp);
        assertThat(loss).isCloseTo(rows * Math.log(V), Offset.offset(1e-6 * rows));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("both")
    void rowsPickedByTokenMatchPlainLoops(String name, TensorOps ops) {
        for (int n : new int[] {LANES, 2 * LANES, 5}) {
            int T = 9, V = 4;
            int[] tokens = {7, 3, 1, 3, 3, 0, 2, 1, 3, 0, 9}; // from offset 1; token 3 repeats, so the scatter sums
            float[] byToken = random(V * n), byPos = random(T * n);
            float[] out = new float[T * n];
            ops.gatherRowsAdd(out, 0, byToken, 0, tokens, 1, byPos, 0, T, n);
            float[] src = random(T * n), dByToken = random(V * n), expected = dByToken.clone();
            ops.scatterRowsAdd(dByToken, 0, tokens, 1, src, 0, T, n);
            for (int t = 0; t < T; t++) {
                int tok = tokens[1 + t];
                for (int i = 0; i < n; i++) {
                    assertThat(out[t * n + i]).isEqualTo(byToken[tok * n + i] + byPos[t * n + i]);
                    expected[tok * n + i] += src[t * n + i];
                }
            }
            assertThat(dByToken).containsExactly(expected);
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("both")
    void elementwiseKernelsMatchPlainLoops(String name, TensorOps ops) {
        int n = 2 * LANES + 5; // whole vectors and a scalar tail
        float[] a = random(n), b = random(n);
        float[] sum = new float[n], relu = new float[n], acc = a.clone();
        ops.addForward(sum, 0, a, 0, b, 0, n);
        ops.accumulate(acc, 0, b, 0, n);
        ops.reluForward(relu, 0, a, 0, n);
        for (int i = 0; i < n; i++) {
            assertThat(sum[i]).isEqualTo(a[i] + b[i]);
            assertThat(acc[i]).isEqualTo(a[i] + b[i]);
            assertThat(relu[i]).isEqualTo(Math.max(0f, a[i]));
        }
        // reluBackward writes the masked gradient, also in place
        float[] dout = random(n), dinp = random(n), expected = new float[n];
        for (int i = 0; i < n; i++) {
            expected[i] = a[i] > 0f ? dout[i] : 0f;
        }
        ops.reluBackward(dinp, 0, dout, 0, a, 0, n);
        assertThat(dinp).containsExactly(expected);
        ops.reluBackward(dout, 0, dout, 0, a, 0, n);
        assertThat(dout).containsExactly(expected);
    }

    /** The extractor's double kernels: a row's softmax at an offset, a matrix product added into its output, LayerNorm. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("both")
    void doubleKernelsMatchTheMath(String name, TensorOps ops) {
        for (int n : new int[] {1, 3, 4, 9, 75, 77}) {
            for (double spread : new double[] {0.1, 5, 60}) {
                double[] logits = new double[n + 3], probs = new double[n];
                for (int i = 0; i < logits.length; i++) {
                    logits[i] = spread * rng.nextGaussian();
                }
                if (n > 2) {
                    logits[3 + 1] = Double.NEGATIVE_INFINITY;
                }
                ops.softmax(probs, logits, 3, n);
                double max = Double.NEGATIVE_INFINITY, z = 0;
                for (int i = 0; i < n; i++) {
                    max = Math.max(max, logits[3 + i]);
                }
                for (int i = 0; i < n; i++) {
                    z += Math.exp(logits[3 + i] - max);
                }
                for (int i = 0; i < n; i++) {
                    double want = Math.exp(logits[3 + i] - max) / z;
                    assertThat(probs[i]).as("n %d spread %s i %d", n, spread, i)
                            .isCloseTo(want, Offset.offset(1e-14 * want + 1e-300));
                }
                if (n > 2) {
                    assertThat(probs[1]).isZero();
                }
            }
        }
        // y += a x at offsets, whole vectors and a tail
        for (int n : new int[] {1, 4, 20, 75}) {
            double[] x = new double[n + 2], y = new double[n + 5];
            for (int i = 0; i < x.length; i++) {
                x[i] = rng.nextGaussian();
            }
            for (int i = 0; i < y.length; i++) {
                y[i] = rng.nextGaussian();
            }
            double[] want = y.clone();
            for (int i = 0; i < n; i++) {
                want[3 + i] += -1.5 * x[2 + i];
            }
            ops.axpy(y, 3, -1.5, x, 2, n);
            for (int i = 0; i < y.length; i++) {
                assertThat(y[i]).as("axpy n %d [%d]", n, i)
                        .isCloseTo(want[i], Offset.offset(1e-14 * (1 + Math.abs(want[i]))));
            }
        }
        // axpyRows: each row exactly as axpy computes it, with row strides, a shared row (stride 0) and a
        // strided alpha
        for (int n : new int[] {1, 4, 20, 75}) {
            int rows = 5, yStride = n + 3, xStride = n + 1;
            double[] x = gaussians(2 + rows * xStride), y = gaussians(1 + rows * yStride), alpha = gaussians(12);
            for (int xs : new int[] {xStride, 0}) {
                double[] want = y.clone(), got = y.clone();
                for (int r = 0; r < rows; r++) {
                    ops.axpy(want, 1 + r * yStride, alpha[1 + 2 * r], x, 2 + r * xs, n);
                }
                ops.axpyRows(got, 1, yStride, alpha, 1, 2, x, 2, xs, rows, n);
                assertThat(got).as("axpyRows n %d x stride %d", n, xs).containsExactly(want);
            }
        }
        // rows and columns around the tile sizes (four rows, two vectors, then one), k from 1
        for (int[] nkm : new int[][] {{75, 20, 75}, {76, 22, 76}, {4, 1, 2 * LANES}, {3, 5, 7},
                {9, 2, 2 * LANES + 1}, {8, 3, 3 * LANES}, {5, 4, 3 * LANES + 1}}) {
            int n = nkm[0], k = nkm[1], m = nkm[2];
            double[] a = gaussians(n * k), b = gaussians(k * m), out = gaussians(n * m);
            double[] want = out.clone();
            for (int r = 0; r < n; r++) {
                for (int c = 0; c < m; c++) {
                    for (int j = 0; j < k; j++) {
                        want[r * m + c] += a[r * k + j] * b[j * m + c];
                    }
                }
            }
            ops.matmulAdd(out, a, b, n, k, m);
            for (int i = 0; i < out.length; i++) {
                assertThat(out[i]).as("%s [%d]", java.util.Arrays.toString(nkm), i)
                        .isCloseTo(want[i], Offset.offset(1e-12 * (1 + Math.abs(want[i]))));
            }
        }
        // one row (the extractor's per-vector layers) is summed exactly as the loop above: j = 0.. after the bias
        double[] x = {0.1, -2.5, 3e-9, 7.25, -0.3}, w = new double[5 * 3], y = {1e9, -4, 0.5};
        for (int i = 0; i < w.length; i++) {
            w[i] = rng.nextGaussian();
        }
        double[] inOrder = y.clone();
        for (int j = 0; j < 5; j++) {
            for (int c = 0; c < 3; c++) {
                inOrder[c] += x[j] * w[j * 3 + c];
            }
        }
        ops.matmulAdd(y, x, w, 1, 5, 3);
        assertThat(y).containsExactly(inOrder);
        // LayerNorm of one vector, against Welford's mean and variance
        for (int n : new int[] {1, 2, 32, 75}) {
            double[] v = new double[n], lw = new double[n], lb = new double[n];
            for (int i = 0; i < n; i++) {
                v[i] = 3 + 2 * rng.nextGaussian();
                lw[i] = rng.nextGaussian();
                lb[i] = rng.nextGaussian();
            }
            double mean = 0, m2 = 0;
            for (int i = 0; i < n; i++) {
                double d = v[i] - mean;
                mean += d / (i + 1);
                m2 += d * (v[i] - mean);
            }
            double scale = Math.sqrt(m2 / n + 1e-5f);
            double[] want = new double[n];
            for (int i = 0; i < n; i++) {
                want[i] = (v[i] - mean) / scale * lw[i] + lb[i];
            }
            assertThat(ops.layerNorm(v, lw, lb)).as("scale, n %d", n).isCloseTo(scale, Offset.offset(1e-12 * scale));
            for (int i = 0; i < n; i++) {
                assertThat(v[i]).as("layerNorm n %d [%d]", n, i).isCloseTo(want[i], Offset.offset(1e-11));
            }
        }
    }

    @Test
    void vectorExpIsAccurateAndExactlyZeroForMinusInfinity() {
        float[] xs = new float[LANES];
        for (float start = -90f; start + 0.37f * LANES < 88.5f; start += 0.37f * LANES) {
            for (int i = 0; i < LANES; i++) {
                xs[i] = start + 0.37f * i;
            }
            float[] out = new float[LANES];
            VectorMath.exp(FloatVector.fromArray(VectorMath.F, xs, 0)).intoArray(out, 0);
            for (int i = 0; i < LANES; i++) {
                double want = xs[i] < -87.3f ? 0 : Math.exp(xs[i]);
                assertThat((double) out[i]).as("exp(%s)", xs[i]).isCloseTo(want, Offset.offset(want * 3e-7 + 1e-38));
            }
        }
        xs[0] = Float.NEGATIVE_INFINITY;
        float[] out = new float[LANES];
        VectorMath.exp(FloatVector.fromArray(VectorMath.F, xs, 0)).intoArray(out, 0);
        assertThat(out[0]).isZero();
    }
}

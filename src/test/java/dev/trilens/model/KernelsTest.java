package dev.trilens.model;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.Random;
import org.assertj.core.data.Offset;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Each vector kernel against the scalar reference beside it, on shapes with and without vector tails. */
class KernelsTest {
    private final Random rng = new Random(42);

    private float[] random(int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) rng.nextGaussian();
        }
        return a;
    }

    private static void assertClose(float[] actual, float[] expected, double tol) {
        for (int i = 0; i < expected.length; i++) {
            assertThat(actual[i]).as("index %d", i)
                    .isCloseTo(expected[i], Offset.offset((float) (tol * (1 + Math.abs(expected[i])))));
        }
    }

    @Test
    void vectorKernelsAreInUse() {
        // the build and launcher pass --add-modules jdk.incubator.vector; without it everything runs scalar
        assertThat(Kernels.VECTOR).isTrue();
    }

    @Test
    void matmulsAgreeWithScalar() {
        // whole vectors (112, 96, 80, 48, 32, 16) and not; row counts with 8- and 4-row tiles, pairs and single rows
        // left over
        int[][] shapes = {{50, 32, 75}, {7, 5, 16}, {3, 16, 33}, {1, 20, 32}, {50, 32, 80}, {11, 21, 48}, {50, 16, 32},
            {3, 20, 16}, {49, 32, 80}, {6, 16, 112}, {4, 8, 96}};
        for (int[] s : shapes) {
            int T = s[0], C = s[1], OC = s[2];
            float[] inp = random(T * C), w = random(C * OC), bias = random(OC), dout = random(T * OC);
            float[] fast = new float[T * OC], slow = new float[T * OC];
            VectorKernels.matmulForward(fast, 0, inp, 0, w, 0, bias, 0, T, C, OC);
            Kernels.matmulForwardScalar(slow, 0, inp, 0, w, 0, bias, 0, T, C, OC);
            assertClose(fast, slow, 1e-5);

            float[] dwFast = random(C * OC), dwSlow = dwFast.clone();
            VectorKernels.matmulBackwardWeight(dwFast, 0, dout, 0, inp, 0, T, C, OC);
            Kernels.matmulBackwardWeightScalar(dwSlow, 0, dout, 0, inp, 0, T, C, OC);
            assertClose(dwFast, dwSlow, 1e-5);

            float[] wT = new float[OC * C];
            Kernels.transpose(wT, 0, w, 0, C, OC);
            float[] dinFast = random(T * C), dinSlow = dinFast.clone();
            VectorKernels.matmulAccumulate(dinFast, 0, dout, 0, wT, 0, T, OC, C);
            Kernels.matmulBackwardInputScalar(dinSlow, 0, dout, 0, wT, 0, T, C, OC);
            assertClose(dinFast, dinSlow, 1e-5);
        }
    }

    /** The strided kernels read only the first C columns of each padded row: garbage in the padding changes nothing. */
    @ParameterizedTest
    @ValueSource(ints = {32, 20}) // whole vectors (vector code) and not (scalar code)
    void stridedMatmulsIgnoreThePadding(int width) {
        int T = 50, C = 20, stride = 32;
        float[] padded = random(T * stride), compact = new float[T * C];
        for (int t = 0; t < T; t++) {
            System.arraycopy(padded, t * stride, compact, t * C, C);
        }
        float[] w = random(C * width), bias = random(width), dout = random(T * width);
        float[] fast = new float[T * width], slow = new float[T * width];
        Kernels.matmulForwardStrided(fast, 0, padded, 0, stride, w, 0, bias, 0, T, C, width);
        Kernels.matmulForwardScalar(slow, 0, compact, 0, w, 0, bias, 0, T, C, width);
        assertClose(fast, slow, 1e-5);

        float[] dwFast = random(C * width), dwSlow = dwFast.clone();
        Kernels.matmulBackwardWeightStrided(dwFast, 0, dout, 0, padded, 0, stride, T, C, width);
        Kernels.matmulBackwardWeightScalar(dwSlow, 0, dout, 0, compact, 0, T, C, width);
        assertClose(dwFast, dwSlow, 1e-5);

        // dinp[T, width] += d[T, C of stride] @ wT[C, width]
        float[] wT = random(C * width), dinFast = random(T * width), dinSlow = dinFast.clone();
        Kernels.matmulBackwardInputStrided(dinFast, 0, padded, 0, stride, wT, 0, T, width, C);
        Kernels.matmulBackwardInputScalar(dinSlow, 0, compact, 0, wT, 0, T, width, C);
        assertClose(dinFast, dinSlow, 1e-5);
    }

    /** Lengths with a partial last vector, whole 8-row tiles and remainders, the challenge's 50, and one below a vector. */
    @ParameterizedTest
    @ValueSource(ints = {5, 16, 21, 50})
    void attentionAgreesWithScalar(int T) {
        int H = 2, Dh = VectorKernels.floatLanes();
        float[] q = random(T * H * Dh), k = random(T * H * Dh), v = random(T * H * Dh), dz = random(T * H * Dh);
        float[] sFast = new float[H * T * T], sSlow = new float[H * T * T];
        VectorKernels.attnScoresForward(sFast, 0, q, 0, k, 0, T, H, Dh);
        Kernels.attnScoresForwardScalar(sSlow, 0, q, 0, k, 0, T, H, Dh);
        assertClose(sFast, sSlow, 1e-6);

        float[] pFast = new float[H * T * T], pSlow = new float[H * T * T];
        VectorKernels.softmaxForward(pFast, 0, sSlow, 0, T, H);
        softmaxScalar(pSlow, sSlow, T, H);
        assertClose(pFast, pSlow, 1e-6);
        assertThat(pFast[1]).isZero(); // row 0 attends only to itself

        float[] zFast = new float[T * H * Dh], zSlow = new float[T * H * Dh];
        VectorKernels.attnValuesForward(zFast, 0, pSlow, 0, v, 0, T, H, Dh);
        attnValuesScalar(zSlow, pSlow, v, T, H, Dh);
        assertClose(zFast, zSlow, 1e-5);

        float[] dpFast = new float[H * T * T], dvFast = new float[T * H * Dh];
        VectorKernels.attnValuesBackward(dpFast, 0, dvFast, 0, dz, 0, pSlow, 0, v, 0, T, H, Dh);
        float[] dpSlow = new float[H * T * T], dvSlow = new float[T * H * Dh];
        attnValuesBackwardScalar(dpSlow, dvSlow, dz, pSlow, v, T, H, Dh);
        for (int h = 0; h < H; h++) {
            for (int i = 0; i < T; i++) {
                for (int j = 0; j <= i; j++) { // only the causal part is defined
                    int at = (h * T + i) * T + j;
                    assertThat(dpFast[at]).isCloseTo(dpSlow[at], Offset.offset(1e-4f));
                }
                for (int j = i + 1; j < T; j++) {
                    assertThat(dpFast[(h * T + i) * T + j]).as("dpattern above the diagonal").isZero();
                }
            }
        }
        assertClose(dvFast, dvSlow, 1e-5);

        float[] dsFast = new float[H * T * T], dsSlow = new float[H * T * T];
        VectorKernels.softmaxBackward(dsFast, 0, dpSlow, 0, pSlow, 0, T, H);
        softmaxBackwardScalar(dsSlow, dpSlow, pSlow, T, H);
        assertClose(dsFast, dsSlow, 1e-5);

        float[] dq1 = new float[T * H * Dh], dk1 = new float[T * H * Dh];
        float[] dq2 = new float[T * H * Dh], dk2 = new float[T * H * Dh];
        float[] dscores = random(H * T * T);
        VectorKernels.attnScoresBackward(dq1, 0, dk1, 0, dscores, 0, q, 0, k, 0, T, H, Dh);
        attnScoresBackwardScalar(dq2, dk2, dscores, q, k, T, H, Dh);
        assertClose(dq1, dq2, 1e-5);
        assertClose(dk1, dk2, 1e-5);
    }

    /** [h][j][i] of a [h][i][j] array. */
    private static float[] keyMajor(float[] queryMajor, int T, int H) {
        float[] t = new float[queryMajor.length];
        for (int h = 0; h < H; h++) {
            for (int i = 0; i < T; i++) {
                for (int j = 0; j < T; j++) {
                    t[(h * T + j) * T + i] = queryMajor[(h * T + i) * T + j];
                }
            }
        }
        return t;
    }

    @ParameterizedTest
    @ValueSource(ints = {16, 21, 50})
    void keyMajorAttentionAgreesWithQueryMajor(int T) {
        int H = 2, Dh = VectorKernels.floatLanes();
        float[] q = random(T * H * Dh), k = random(T * H * Dh), v = random(T * H * Dh), dz = random(T * H * Dh);
        for (int i = 0; i < q.length; i++) {
            q[i] *= 8; // sharper patterns than uniform
        }
        float[] s = new float[H * T * T], p = new float[H * T * T];
        Kernels.attnScoresForwardScalar(s, 0, q, 0, k, 0, T, H, Dh);
        softmaxScalar(p, s, T, H);
        float[] sT = new float[H * T * T], pT = new float[H * T * T];
        java.util.Arrays.fill(sT, Float.NaN); // every entry must be written
        java.util.Arrays.fill(pT, Float.NaN);
        VectorKernels.attnScoresForwardKeyMajor(sT, 0, q, 0, k, 0, T, H, Dh);
        VectorKernels.softmaxForwardKeyMajor(pT, 0, sT, 0, T, H);
        assertClose(sT, keyMajor(s, T, H), 1e-5);
        assertClose(pT, keyMajor(p, T, H), 1e-5);

        float[] z = new float[T * H * Dh], zT = new float[T * H * Dh];
        attnValuesScalar(z, p, v, T, H, Dh);
        VectorKernels.attnValuesForwardKeyMajor(zT, 0, pT, 0, v, 0, T, H, Dh);
        assertClose(zT, z, 1e-5);

        float[] dp = new float[H * T * T], dv = new float[T * H * Dh];
        attnValuesBackwardScalar(dp, dv, dz, p, v, T, H, Dh);
        float[] dpT = new float[H * T * T], dvT = new float[T * H * Dh];
        java.util.Arrays.fill(dpT, Float.NaN);
        VectorKernels.attnValuesBackwardKeyMajor(dpT, 0, dvT, 0, dz, 0, pT, 0, v, 0, T, H, Dh);
        assertClose(dpT, keyMajor(dp, T, H), 1e-5); // the reference leaves 0 above the diagonal, as required
        assertClose(dvT, dv, 1e-5);

        float[] ds = new float[H * T * T], dsT = new float[H * T * T];
        softmaxBackwardScalar(ds, dp, p, T, H);
        java.util.Arrays.fill(dsT, Float.NaN);
        VectorKernels.softmaxBackwardKeyMajor(dsT, 0, dpT, 0, pT, 0, T, H);
        assertClose(dsT, keyMajor(ds, T, H), 1e-5);

        float[] dq = new float[T * H * Dh], dk = new float[T * H * Dh];
        float[] dqT = new float[T * H * Dh], dkT = new float[T * H * Dh];
        attnScoresBackwardScalar(dq, dk, ds, q, k, T, H, Dh);
        VectorKernels.attnScoresBackwardKeyMajor(dqT, 0, dkT, 0, dsT, 0, q, 0, k, 0, T, H, Dh);
        assertClose(dqT, dq, 1e-4);
        assertClose(dkT, dk, 1e-4);
    }

    /** Denormals cost a microcode assist per operation; sharp softmaxes must not produce them. */
    @Test
    void sharpSoftmaxesProduceNoDenormals() {
        int T = 50, H = 1, V = 75, Vp = 80;
        float[] scores = new float[T * T], logits = new float[T * Vp];
        java.util.Random r = new java.util.Random(7);
        for (int i = 0; i < T; i++) {
            for (int j = 0; j < T; j++) {
                scores[i * T + j] = j <= i ? -95f * r.nextFloat() : Float.NEGATIVE_INFINITY; // spreads past e^-87
            }
            for (int v = 0; v < Vp; v++) {
                logits[i * Vp + v] = v < V ? 100f - 95f * r.nextFloat() : Float.NEGATIVE_INFINITY;
            }
        }
        float[] pattern = new float[T * T], patternT = new float[T * T];
        VectorKernels.softmaxForward(pattern, 0, scores, 0, T, H);
        VectorKernels.softmaxForwardKeyMajor(patternT, 0, keyMajor(scores, T, H), 0, T, H);
        float[] dlogits = new float[T * Vp];
        int[] tokens = new int[T];
        VectorKernels.crossEntropyForwardBackward(dlogits, logits, tokens, 0, 1f / (512 * 49), T, V, Vp);
        for (float[] a : new float[][] {pattern, patternT, dlogits}) {
            for (float x : a) {
                assertThat(x == 0f || Math.abs(x) >= Float.MIN_NORMAL).as("%s is a denormal", x).isTrue();
            }
        }
    }

    @Test
    void crossEntropyAgreesWithScalar() {
        int T = 6, V = 75, Vp = 80;
        float[] logits = random(T * Vp);
        for (int t = 0; t < T; t++) {
            java.util.Arrays.fill(logits, t * Vp + V, (t + 1) * Vp, Float.NEGATIVE_INFINITY); // as the trainer pads
        }
        int[] tokens = {3, 74, 0, 12, 40, 5};
        float[] dFast = new float[T * Vp], dSlow = new float[T * Vp];
        double fast = VectorKernels.crossEntropyForwardBackward(dFast, logits, tokens, 1, 0.5f, T - 1, V, Vp);
        double slow = 0;
        for (int t = 0; t < T - 1; t++) {
            double max = Double.NEGATIVE_INFINITY, sum = 0;
            for (int i = 0; i < V; i++) {
                max = Math.max(max, logits[t * Vp + i]);
            }
            for (int i = 0; i < V; i++) {
                sum += Math.exp(logits[t * Vp + i] - max);
            }
            slow -= logits[t * Vp + tokens[t + 1]] - max - Math.log(sum);
            for (int i = 0; i < V; i++) {
                dSlow[t * Vp + i] = (float) (0.5 * Math.exp(logits[t * Vp + i] - max) / sum
                        - (i == tokens[t + 1] ? 0.5 : 0));
            }
        }
        assertThat(fast).isCloseTo(slow, Offset.offset(1e-4));
        assertClose(dFast, dSlow, 1e-5);
    }

    @ParameterizedTest
    @ValueSource(ints = {16, 32, 5})
    void rowsPickedByTokenMatchPlainLoops(int n) {
        int T = 9, V = 4;
        int[] tokens = {7, 3, 1, 3, 3, 0, 2, 1, 3, 0, 9}; // from offset 1; token 3 repeats, so the scatter sums
        float[] byToken = random(V * n), byPos = random(T * n);
        float[] out = new float[T * n];
        Kernels.gatherRowsAdd(out, 0, byToken, 0, tokens, 1, byPos, 0, T, n);
        float[] src = random(T * n), dByToken = random(V * n), expected = dByToken.clone();
        Kernels.scatterRowsAdd(dByToken, 0, tokens, 1, src, 0, T, n);
        for (int t = 0; t < T; t++) {
            int tok = tokens[1 + t];
            for (int i = 0; i < n; i++) {
                assertThat(out[t * n + i]).isEqualTo(byToken[tok * n + i] + byPos[t * n + i]);
                expected[tok * n + i] += src[t * n + i];
            }
        }
        assertThat(dByToken).containsExactly(expected);
    }

    @Test
    void reluBackwardWritesTheMaskedGradientInPlaceToo() {
        int n = 37; // two vectors and a scalar tail
        float[] pre = random(n), dout = random(n), dinp = random(n);
        float[] expected = new float[n];
        for (int i = 0; i < n; i++) {
            expected[i] = pre[i] > 0f ? dout[i] : 0f;
        }
        Kernels.reluBackward(dinp, 0, dout, 0, pre, 0, n);
        assertThat(dinp).containsExactly(expected);
        Kernels.reluBackward(dout, 0, dout, 0, pre, 0, n);
        assertThat(dout).containsExactly(expected);
    }

    @Test
    void crossEntropyOfManyRowsStaysFinite() {
        // uniform rows: each sum of exps is 75, and 75^400 overflows a double unless the product is folded into logs
        int rows = 400, V = 75, Vp = 80;
        float[] logits = new float[rows * Vp];
        for (int t = 0; t < rows; t++) {
            java.util.Arrays.fill(logits, t * Vp + V, (t + 1) * Vp, Float.NEGATIVE_INFINITY);
        }
        int[] targets = new int[rows];
        double loss = Kernels.crossEntropyForwardBackward(new float[rows * Vp], logits, targets, 0, 1f, rows, V, Vp);
        assertThat(loss).isCloseTo(rows * Math.log(V), Offset.offset(1e-6 * rows));
    }

    @Test
    void doubleSoftmaxAgreesWithScalar() {
        java.util.Random rng = new java.util.Random(3);
        for (int n : new int[] {1, 3, 4, 9, 75, 77}) {
            for (double spread : new double[] {0.1, 5, 60}) {
                double[] logits = new double[n], vector = new double[n], scalar = new double[n];
                for (int i = 0; i < n; i++) {
                    logits[i] = spread * rng.nextGaussian();
                }
                if (n > 2) {
                    logits[1] = Double.NEGATIVE_INFINITY;
                }
                VectorKernels.softmax(vector, logits, n);
                Kernels.softmaxScalar(scalar, logits, n);
                double sum = 0;
                for (int i = 0; i < n; i++) {
                    assertThat(vector[i]).as("n %d spread %s i %d", n, spread, i)
                            .isCloseTo(scalar[i], Offset.offset(1e-14 * scalar[i] + 1e-300));
                    sum += vector[i];
                }
                assertThat(sum).isCloseTo(1, Offset.offset(1e-14));
                if (n > 2) {
                    assertThat(vector[1]).isZero();
                }
            }
        }
    }

    @Test
    void vectorExpIsAccurateAndExactlyZeroForMinusInfinity() {
        int L = VectorKernels.floatLanes();
        float[] xs = new float[L];
        for (float start = -90f; start + 0.37f * L < 88.5f; start += 0.37f * L) {
            for (int i = 0; i < L; i++) {
                xs[i] = start + 0.37f * i;
            }
            float[] out = new float[L];
            VectorKernels.exp(jdk.incubator.vector.FloatVector.fromArray(jdk.incubator.vector.FloatVector.SPECIES_PREFERRED, xs, 0)).intoArray(out, 0);
            for (int i = 0; i < L; i++) {
                double want = xs[i] < -87.3f ? 0 : Math.exp(xs[i]);
                assertThat((double) out[i]).as("exp(%s)", xs[i]).isCloseTo(want, Offset.offset(want * 3e-7 + 1e-38));
            }
        }
        xs[0] = Float.NEGATIVE_INFINITY;
        float[] out = new float[L];
        VectorKernels.exp(jdk.incubator.vector.FloatVector.fromArray(jdk.incubator.vector.FloatVector.SPECIES_PREFERRED, xs, 0)).intoArray(out, 0);
        assertThat(out[0]).isZero();
    }

    // scalar references for the kernels whose scalar form in Kernels dispatches to the vector one

    private static void softmaxScalar(float[] p, float[] s, int T, int H) {
        for (int r = 0; r < H * T; r++) {
            double max = Double.NEGATIVE_INFINITY, sum = 0;
            for (int j = 0; j < T; j++) {
                max = Math.max(max, s[r * T + j]);
            }
            for (int j = 0; j < T; j++) {
                sum += s[r * T + j] == Float.NEGATIVE_INFINITY ? 0 : Math.exp(s[r * T + j] - max);
            }
            for (int j = 0; j < T; j++) {
                p[r * T + j] = s[r * T + j] == Float.NEGATIVE_INFINITY ? 0f : (float) (Math.exp(s[r * T + j] - max) / sum);
            }
        }
    }

    private static void softmaxBackwardScalar(float[] ds, float[] dp, float[] p, int T, int H) {
        for (int r = 0; r < H * T; r++) {
            double dot = 0;
            for (int j = 0; j < T; j++) {
                dot += p[r * T + j] * dp[r * T + j];
            }
            for (int j = 0; j < T; j++) {
                ds[r * T + j] += (float) (p[r * T + j] * (dp[r * T + j] - dot));
            }
        }
    }

    private static void attnValuesScalar(float[] z, float[] p, float[] v, int T, int H, int Dh) {
        for (int i = 0; i < T; i++) {
            for (int h = 0; h < H; h++) {
                for (int j = 0; j < T; j++) {
                    for (int e = 0; e < Dh; e++) {
                        z[(i * H + h) * Dh + e] += p[(h * T + i) * T + j] * v[(j * H + h) * Dh + e];
                    }
                }
            }
        }
    }

    private static void attnValuesBackwardScalar(float[] dp, float[] dv, float[] dz, float[] p, float[] v, int T,
                                                 int H, int Dh) {
        for (int i = 0; i < T; i++) {
            for (int h = 0; h < H; h++) {
                for (int j = 0; j <= i; j++) {
                    for (int e = 0; e < Dh; e++) {
                        dp[(h * T + i) * T + j] += dz[(i * H + h) * Dh + e] * v[(j * H + h) * Dh + e];
                        dv[(j * H + h) * Dh + e] += p[(h * T + i) * T + j] * dz[(i * H + h) * Dh + e];
                    }
                }
            }
        }
    }

    private static void attnScoresBackwardScalar(float[] dq, float[] dk, float[] ds, float[] q, float[] k, int T,
                                                 int H, int Dh) {
        float scale = (float) (1 / Math.sqrt(Dh));
        for (int h = 0; h < H; h++) {
            for (int i = 0; i < T; i++) {
                for (int j = 0; j <= i; j++) {
                    float g = ds[(h * T + i) * T + j] * scale;
                    for (int e = 0; e < Dh; e++) {
                        dq[(i * H + h) * Dh + e] += g * k[(j * H + h) * Dh + e];
                        dk[(j * H + h) * Dh + e] += g * q[(i * H + h) * Dh + e];
                    }
                }
            }
        }
    }
}

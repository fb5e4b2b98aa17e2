package dev.trilens.model;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Vector-API versions of the hot kernels in {@link Kernels}, same arguments and results (up to float rounding).
 * Loaded only when the jdk.incubator.vector module is present; Kernels falls back to its scalar code otherwise.
 */
final class VectorKernels {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;

    /** Per-thread scratch: K or V transposed to [Dh, T], and for the scores Q of one head [T, Dh]. */
    private static final ThreadLocal<float[]> FLOAT_SCRATCH = ThreadLocal.withInitial(() -> new float[0]);

    private VectorKernels() {
    }

    /**
     * out[T,OC] = inp[T,C] @ w[C,OC] + bias: lanes over OC, four rows at a time so each w load feeds four FMAs.
     * When OC is not a whole number of vectors the last vector overlaps the one before it: the overlapped columns
     * are computed twice, identically, which is cheaper than a scalar tail (and other vector widths in the same
     * loop would stop the JIT from compiling the vector code at all).
     */
    static void matmulForward(float[] out, int outOff, float[] inp, int inpOff, float[] w, int wOff,
                              float[] bias, int biasOff, int T, int C, int OC) {
        if (OC < F.length()) {
            Kernels.matmulForwardScalar(out, outOff, inp, inpOff, w, wOff, bias, biasOff, T, C, OC);
            return;
        }
        matmulRows(out, outOff, inp, inpOff, w, wOff, bias, biasOff, false, T, C, OC);
    }

    /** out[T,OC] += inp[T,C] @ w[C,OC]. */
    static void matmulAccumulate(float[] out, int outOff, float[] inp, int inpOff, float[] w, int wOff,
                                 int T, int C, int OC) {
        if (OC % F.length() != 0) {
            // accumulating twice into overlapped columns would be wrong; training pads its widths, so this is rare
            for (int t = 0; t < T; t++) {
                for (int o = 0; o < OC; o++) {
                    float acc = out[outOff + t * OC + o];
                    for (int c = 0; c < C; c++) {
                        acc = Math.fma(inp[inpOff + t * C + c], w[wOff + c * OC + o], acc);
                    }
                    out[outOff + t * OC + o] = acc;
                }
            }
            return;
        }
        matmulRows(out, outOff, inp, inpOff, w, wOff, null, 0, true, T, C, OC);
    }

    /** The shared loop: each output vector starts from out itself (accumulate), the bias, or zero. */
    private static void matmulRows(float[] out, int outOff, float[] inp, int inpOff, float[] w, int wOff,
                                   float[] bias, int biasOff, boolean accumulate, int T, int C, int OC) {
        int L = F.length();
        int t = 0;
        for (; t + 3 < T; t += 4) {
            int i0 = inpOff + t * C, i1 = i0 + C, i2 = i1 + C, i3 = i2 + C;
            int o0 = outOff + t * OC, o1 = o0 + OC, o2 = o1 + OC, o3 = o2 + OC;
            for (int blk = 0; blk < OC; blk += L) {
                int o = Math.min(blk, OC - L);
                FloatVector acc0, acc1, acc2, acc3;
                if (accumulate) {
                    acc0 = FloatVector.fromArray(F, out, o0 + o);
                    acc1 = FloatVector.fromArray(F, out, o1 + o);
                    acc2 = FloatVector.fromArray(F, out, o2 + o);
                    acc3 = FloatVector.fromArray(F, out, o3 + o);
                } else {
                    acc0 = bias != null ? FloatVector.fromArray(F, bias, biasOff + o) : FloatVector.zero(F);
                    acc1 = acc0;
                    acc2 = acc0;
                    acc3 = acc0;
                }
                for (int c = 0; c < C; c++) {
                    FloatVector wv = FloatVector.fromArray(F, w, wOff + c * OC + o);
                    acc0 = wv.fma(FloatVector.broadcast(F, inp[i0 + c]), acc0);
                    acc1 = wv.fma(FloatVector.broadcast(F, inp[i1 + c]), acc1);
                    acc2 = wv.fma(FloatVector.broadcast(F, inp[i2 + c]), acc2);
                    acc3 = wv.fma(FloatVector.broadcast(F, inp[i3 + c]), acc3);
                }
                acc0.intoArray(out, o0 + o);
                acc1.intoArray(out, o1 + o);
                acc2.intoArray(out, o2 + o);
                acc3.intoArray(out, o3 + o);
            }
        }
        for (; t < T; t++) {
            int i0 = inpOff + t * C, o0 = outOff + t * OC;
            for (int blk = 0; blk < OC; blk += L) {
                int o = Math.min(blk, OC - L);
                FloatVector acc0 = accumulate ? FloatVector.fromArray(F, out, o0 + o)
                        : bias != null ? FloatVector.fromArray(F, bias, biasOff + o) : FloatVector.zero(F);
                for (int c = 0; c < C; c++) {
                    acc0 = FloatVector.fromArray(F, w, wOff + c * OC + o).fma(FloatVector.broadcast(F, inp[i0 + c]), acc0);
                }
                acc0.intoArray(out, o0 + o);
            }
        }
    }

    /** dw[C,OC] += inp^T @ dout: lanes over OC, four input channels at a time so each dout load feeds four FMAs. */
    static void matmulBackwardWeight(float[] dw, int dwOff, float[] dout, int doutOff, float[] inp, int inpOff,
                                     int T, int C, int OC) {
        int L = F.length();
        if (OC % L != 0) {
            Kernels.matmulBackwardWeightScalar(dw, dwOff, dout, doutOff, inp, inpOff, T, C, OC);
            return;
        }
        int c = 0;
        for (; c + 3 < C; c += 4) {
            for (int o = 0; o < OC; o += L) {
                int d0 = dwOff + c * OC + o;
                FloatVector acc0 = FloatVector.fromArray(F, dw, d0);
                FloatVector acc1 = FloatVector.fromArray(F, dw, d0 + OC);
                FloatVector acc2 = FloatVector.fromArray(F, dw, d0 + 2 * OC);
                FloatVector acc3 = FloatVector.fromArray(F, dw, d0 + 3 * OC);
                for (int t = 0; t < T; t++) {
                    FloatVector g = FloatVector.fromArray(F, dout, doutOff + t * OC + o);
                    int x = inpOff + t * C + c;
                    acc0 = g.fma(FloatVector.broadcast(F, inp[x]), acc0);
                    acc1 = g.fma(FloatVector.broadcast(F, inp[x + 1]), acc1);
                    acc2 = g.fma(FloatVector.broadcast(F, inp[x + 2]), acc2);
                    acc3 = g.fma(FloatVector.broadcast(F, inp[x + 3]), acc3);
                }
                acc0.intoArray(dw, d0);
                acc1.intoArray(dw, d0 + OC);
                acc2.intoArray(dw, d0 + 2 * OC);
                acc3.intoArray(dw, d0 + 3 * OC);
            }
        }
        for (; c < C; c++) {
            for (int o = 0; o < OC; o += L) {
                int d0 = dwOff + c * OC + o;
                FloatVector acc = FloatVector.fromArray(F, dw, d0);
                for (int t = 0; t < T; t++) {
                    acc = FloatVector.fromArray(F, dout, doutOff + t * OC + o)
                            .fma(FloatVector.broadcast(F, inp[inpOff + t * C + c]), acc);
                }
                acc.intoArray(dw, d0);
            }
        }
    }

    /** dinp[T,C] += dout[T,OC] @ wT[OC,C], with w already transposed so lanes run over C. */
    static void matmulBackwardInput(float[] dinp, int dinpOff, float[] dout, int doutOff, float[] wT, int wTOff,
                                    int T, int C, int OC) {
        matmulAccumulate(dinp, dinpOff, dout, doutOff, wT, wTOff, T, OC, C);
    }

    /**
     * scores[h,i,j] for j <= i: per head, Q (pre-scaled by 1/sqrt(Dh)) times K transposed, as one matmul with lanes
     * over j; the entries above the diagonal are computed too, then overwritten with -inf.
     */
    static void attnScoresForward(float[] scores, int sOff, float[] q, int qOff, float[] k, int kOff,
                                  int T, int H, int Dh) {
        if (T < F.length()) {
            Kernels.attnScoresForwardScalar(scores, sOff, q, qOff, k, kOff, T, H, Dh);
            return;
        }
        float[] scratch = FLOAT_SCRATCH.get();
        if (scratch.length < 2 * Dh * T) {
            scratch = new float[2 * Dh * T];
            FLOAT_SCRATCH.set(scratch);
        }
        int qhOff = Dh * T;
        float scale = (float) (1.0 / Math.sqrt(Dh));
        int HDh = H * Dh;
        for (int h = 0; h < H; h++) {
            for (int j = 0; j < T; j++) {
                for (int e = 0; e < Dh; e++) {
                    scratch[e * T + j] = k[kOff + j * HDh + h * Dh + e];
                    scratch[qhOff + j * Dh + e] = q[qOff + j * HDh + h * Dh + e] * scale;
                }
            }
            int s_h = sOff + h * T * T;
            causalScores(scores, s_h, scratch, qhOff, scratch, T, Dh);
            for (int i = 0; i < T - 1; i++) {
                java.util.Arrays.fill(scores, s_h + i * T + i + 1, s_h + (i + 1) * T, Float.NEGATIVE_INFINITY);
            }
        }
    }

    /**
     * scores[i, 0..] = qh[i,:] @ kT for four rows at a time, only over the column vectors that reach the diagonal
     * (the last one may overlap its neighbour, recomputing the same values).
     */
    private static void causalScores(float[] scores, int sOff, float[] qh, int qhOff, float[] kT, int T, int Dh) {
        int L = F.length();
        int i = 0;
        for (; i + 3 < T; i += 4) {
            int q0 = qhOff + i * Dh;
            for (int blk = 0; blk <= i + 3; blk += L) {
                int j = Math.min(blk, T - L);
                FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
                for (int e = 0; e < Dh; e++) {
                    FloatVector kv = FloatVector.fromArray(F, kT, e * T + j);
                    a0 = kv.fma(FloatVector.broadcast(F, qh[q0 + e]), a0);
                    a1 = kv.fma(FloatVector.broadcast(F, qh[q0 + Dh + e]), a1);
                    a2 = kv.fma(FloatVector.broadcast(F, qh[q0 + 2 * Dh + e]), a2);
                    a3 = kv.fma(FloatVector.broadcast(F, qh[q0 + 3 * Dh + e]), a3);
                }
                a0.intoArray(scores, sOff + i * T + j);
                a1.intoArray(scores, sOff + (i + 1) * T + j);
                a2.intoArray(scores, sOff + (i + 2) * T + j);
                a3.intoArray(scores, sOff + (i + 3) * T + j);
            }
        }
        for (; i < T; i++) {
            for (int blk = 0; blk <= i; blk += L) {
                int j = Math.min(blk, T - L);
                FloatVector a0 = FloatVector.zero(F);
                for (int e = 0; e < Dh; e++) {
                    a0 = FloatVector.fromArray(F, kT, e * T + j).fma(FloatVector.broadcast(F, qh[qhOff + i * Dh + e]), a0);
                }
                a0.intoArray(scores, sOff + i * T + j);
            }
        }
    }

    // Results must not depend on whether a method runs compiled or interpreted: the JIT intrinsics for EXP and for
    // reduceLanes(ADD) round differently from their Java fallbacks, which broke run-to-run reproducibility. So exp is
    // built from exactly-rounded lane operations, and sums across lanes are done in scalar code, in order.

    private static final float LOG2E = 1.44269504088896341f;
    private static final float LN2_HI = 0.693359375f;
    private static final float LN2_LO = -2.12194440e-4f;
    private static final float ROUNDER = 12582912f; // 1.5 * 2^23: adding and subtracting it rounds to an integer
    private static final float EXP_MIN = -87.3f, EXP_MAX = 88.7f;

    /** e^x per lane (Cephes expf, ~1 ulp); exactly 0 below EXP_MIN, including -inf. */
    static FloatVector exp(FloatVector x) {
        var tooSmall = x.compare(VectorOperators.LT, EXP_MIN);
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

    /** Per-thread lane buffer for hsum. */
    private static final ThreadLocal<float[]> LANES = ThreadLocal.withInitial(() -> new float[F.length()]);

    /** Sum of the lanes in a fixed order, the same compiled or interpreted (unlike reduceLanes(ADD)). */
    static float hsum(FloatVector v, float[] lanes) {
        v.intoArray(lanes, 0);
        float sum = 0f;
        for (float x : lanes) {
            sum += x;
        }
        return sum;
    }

    static int floatLanes() {
        return F.length();
    }

    // The attention kernels below need Dh to be a multiple of floatLanes(); Kernels checks before calling.

    /** z[i,h,:] = sum_{j<=i} pattern[h,i,j] * v[j,h,:], lanes over Dh. */
    static void attnValuesForward(float[] z, int zOff, float[] pattern, int pOff, float[] v, int vOff,
                                  int T, int H, int Dh) {
        int HDh = H * Dh;
        for (int i = 0; i < T; i++) {
            for (int h = 0; h < H; h++) {
                int p_hi = pOff + (h * T + i) * T;
                for (int e = 0; e < Dh; e += F.length()) {
                    FloatVector acc = FloatVector.zero(F);
                    for (int j = 0; j <= i; j++) {
                        acc = FloatVector.fromArray(F, v, vOff + j * HDh + h * Dh + e)
                                .fma(FloatVector.broadcast(F, pattern[p_hi + j]), acc);
                    }
                    acc.intoArray(z, zOff + i * HDh + h * Dh + e);
                }
            }
        }
    }

    static void attnValuesBackward(float[] dpattern, int dpOff, float[] dv, int dvOff, float[] dz, int dzOff,
                                   float[] pattern, int pOff, float[] v, int vOff, int T, int H, int Dh) {
        int HDh = H * Dh;
        int L = F.length();
        float[] vT = FLOAT_SCRATCH.get();
        if (vT.length < Dh * T) {
            vT = new float[Dh * T];
            FLOAT_SCRATCH.set(vT);
        }
        for (int h = 0; h < H; h++) {
            for (int j = 0; j < T; j++) {
                for (int e = 0; e < Dh; e++) {
                    vT[e * T + j] = v[vOff + j * HDh + h * Dh + e];
                }
            }
            for (int i = 0; i < T; i++) {
                int row = (h * T + i) * T;
                int dz_i = dzOff + i * HDh + h * Dh;
                // dpattern[h,i,j] = dz[i,h,:] . v[j,h,:], lanes over j
                int n = i + 1;
                int jBound = F.loopBound(n);
                for (int j = 0; j < jBound; j += L) {
                    FloatVector acc = FloatVector.fromArray(F, dpattern, dpOff + row + j);
                    for (int e = 0; e < Dh; e++) {
                        acc = FloatVector.fromArray(F, vT, e * T + j).fma(FloatVector.broadcast(F, dz[dz_i + e]), acc);
                    }
                    acc.intoArray(dpattern, dpOff + row + j);
                }
                for (int j = jBound; j < n; j++) {
                    float acc = dpattern[dpOff + row + j];
                    for (int e = 0; e < Dh; e++) {
                        acc = Math.fma(dz[dz_i + e], vT[e * T + j], acc);
                    }
                    dpattern[dpOff + row + j] = acc;
                }
            }
            // dv[j,h,:] += sum_{i>=j} pattern[h,i,j] * dz[i,h,:]: four j at a time, accumulated in registers
            int j = 0;
            for (; j + 3 < T; j += 4) {
                for (int e = 0; e < Dh; e += L) {
                    int dv0 = dvOff + j * HDh + h * Dh + e;
                    FloatVector a0 = FloatVector.fromArray(F, dv, dv0);
                    FloatVector a1 = FloatVector.fromArray(F, dv, dv0 + HDh);
                    FloatVector a2 = FloatVector.fromArray(F, dv, dv0 + 2 * HDh);
                    FloatVector a3 = FloatVector.fromArray(F, dv, dv0 + 3 * HDh);
                    for (int i = j; i < T; i++) {
                        FloatVector dzi = FloatVector.fromArray(F, dz, dzOff + i * HDh + h * Dh + e);
                        int p_ij = pOff + (h * T + i) * T + j;
                        // pattern is 0 above the diagonal, so i = j..j+2 add nothing for the later columns
                        a0 = dzi.fma(FloatVector.broadcast(F, pattern[p_ij]), a0);
                        a1 = dzi.fma(FloatVector.broadcast(F, pattern[p_ij + 1]), a1);
                        a2 = dzi.fma(FloatVector.broadcast(F, pattern[p_ij + 2]), a2);
                        a3 = dzi.fma(FloatVector.broadcast(F, pattern[p_ij + 3]), a3);
                    }
                    a0.intoArray(dv, dv0);
                    a1.intoArray(dv, dv0 + HDh);
                    a2.intoArray(dv, dv0 + 2 * HDh);
                    a3.intoArray(dv, dv0 + 3 * HDh);
                }
            }
            for (; j < T; j++) {
                for (int e = 0; e < Dh; e += L) {
                    int dv0 = dvOff + j * HDh + h * Dh + e;
                    FloatVector a0 = FloatVector.fromArray(F, dv, dv0);
                    for (int i = j; i < T; i++) {
                        a0 = FloatVector.fromArray(F, dz, dzOff + i * HDh + h * Dh + e)
                                .fma(FloatVector.broadcast(F, pattern[pOff + (h * T + i) * T + j]), a0);
                    }
                    a0.intoArray(dv, dv0);
                }
            }
        }
    }

    static void attnScoresBackward(float[] dq, int dqOff, float[] dk, int dkOff, float[] dscores, int dsOff,
                                   float[] q, int qOff, float[] k, int kOff, int T, int H, int Dh) {
        float scale = (float) (1.0 / Math.sqrt(Dh));
        int HDh = H * Dh;
        for (int h = 0; h < H; h++) {
            for (int i = 0; i < T; i++) {
                int row = dsOff + (h * T + i) * T;
                for (int e = 0; e < Dh; e += F.length()) {
                    int at_i = i * HDh + h * Dh + e;
                    FloatVector qi = FloatVector.fromArray(F, q, qOff + at_i);
                    FloatVector dqi = FloatVector.fromArray(F, dq, dqOff + at_i);
                    for (int j = 0; j <= i; j++) {
                        // scores[h,i,j] = q[i,h,:] . k[j,h,:] * scale
                        float g = dscores[row + j] * scale;
                        int at_j = j * HDh + h * Dh + e;
                        dqi = FloatVector.fromArray(F, k, kOff + at_j).fma(FloatVector.broadcast(F, g), dqi);
                        FloatVector.fromArray(F, dk, dkOff + at_j).add(qi.mul(g)).intoArray(dk, dkOff + at_j);
                    }
                    dqi.intoArray(dq, dqOff + at_i);
                }
            }
        }
    }

    /** pattern rows = softmax(score rows), exp in vector lanes; -inf scores give exactly 0. */
    static void softmaxForward(float[] pattern, int pOff, float[] scores, int sOff, int T, int H) {
        int L = F.length();
        if (T < L) {
            Kernels.softmaxForwardScalar(pattern, pOff, scores, sOff, T, H);
            return;
        }
        float[] lanes = LANES.get();
        int jBound = F.loopBound(T);
        for (int r = 0; r < H * T; r++) {
            int s_r = sOff + r * T, p_r = pOff + r * T;
            FloatVector maxV = FloatVector.fromArray(F, scores, s_r + T - L);
            for (int j = 0; j < jBound; j += L) {
                maxV = maxV.max(FloatVector.fromArray(F, scores, s_r + j));
            }
            float max = maxV.reduceLanes(VectorOperators.MAX); // exact in any order
            // the last vector may overlap the one before: exp is recomputed identically there. Vectors wholly above
            // the causal diagonal (all -inf) are zero without computing exp.
            for (int blk = 0; blk < T; blk += L) {
                int j = Math.min(blk, T - L);
                FloatVector sv = FloatVector.fromArray(F, scores, s_r + j);
                if (sv.compare(VectorOperators.NE, Float.NEGATIVE_INFINITY).anyTrue()) {
                    exp(sv.sub(max)).intoArray(pattern, p_r + j);
                } else {
                    FloatVector.zero(F).intoArray(pattern, p_r + j);
                }
            }
            FloatVector sumV = FloatVector.zero(F);
            for (int j = 0; j < jBound; j += L) {
                sumV = sumV.add(FloatVector.fromArray(F, pattern, p_r + j));
            }
            float sum = hsum(sumV, lanes);
            for (int j = jBound; j < T; j++) {
                sum += pattern[p_r + j];
            }
            float inv = 1f / sum;
            for (int blk = 0; blk < T; blk += L) {
                int j = Math.min(blk, T - L);
                if (j < blk) {
                    // overlapped lanes are already scaled: scale only the tail
                    for (int jj = blk; jj < T; jj++) {
                        pattern[p_r + jj] *= inv;
                    }
                } else {
                    FloatVector.fromArray(F, pattern, p_r + j).mul(inv).intoArray(pattern, p_r + j);
                }
            }
        }
    }

    /** dscores[j] += p[j] * (dp[j] - sum_k p[k] dp[k]); entries above the diagonal have p = 0 and add nothing. */
    static void softmaxBackward(float[] dscores, int dsOff, float[] dpattern, int dpOff, float[] pattern, int pOff,
                                int T, int H) {
        int L = F.length();
        float[] lanes = LANES.get();
        for (int r = 0; r < H * T; r++) {
            int row = r * T;
            int n = r % T + 1;
            int jBound = F.loopBound(n);
            FloatVector dotV = FloatVector.zero(F);
            for (int j = 0; j < jBound; j += L) {
                dotV = FloatVector.fromArray(F, pattern, pOff + row + j)
                        .fma(FloatVector.fromArray(F, dpattern, dpOff + row + j), dotV);
            }
            float dot = hsum(dotV, lanes);
            for (int j = jBound; j < n; j++) {
                dot += pattern[pOff + row + j] * dpattern[dpOff + row + j];
            }
            for (int j = 0; j < jBound; j += L) {
                FloatVector p = FloatVector.fromArray(F, pattern, pOff + row + j);
                FloatVector g = FloatVector.fromArray(F, dpattern, dpOff + row + j).sub(dot);
                p.fma(g, FloatVector.fromArray(F, dscores, dsOff + row + j)).intoArray(dscores, dsOff + row + j);
            }
            for (int j = jBound; j < n; j++) {
                dscores[dsOff + row + j] += pattern[pOff + row + j] * (dpattern[dpOff + row + j] - dot);
            }
        }
    }

    /**
     * See Kernels.crossEntropyForwardBackward; exp in vector lanes over whole rows of Vp (a multiple of the lane
     * count), so the padding columns V..Vp-1 must hold -inf (the trainer pads b_U with it): their exp is exactly 0.
     */
    static double crossEntropyForwardBackward(float[] dlogits, float[] logits, int[] tokens, int tokOff,
                                              float scale, int T, int V, int Vp) {
        int L = F.length();
        float[] lanes = LANES.get();
        double loss = 0;
        for (int t = 0; t < T - 1; t++) {
            int row = t * Vp;
            FloatVector maxV = FloatVector.fromArray(F, logits, row);
            for (int i = L; i < Vp; i += L) {
                maxV = maxV.max(FloatVector.fromArray(F, logits, row + i));
            }
            float max = maxV.reduceLanes(VectorOperators.MAX);
            for (int i = 0; i < Vp; i += L) {
                exp(FloatVector.fromArray(F, logits, row + i).sub(max)).intoArray(dlogits, row + i);
            }
            FloatVector sumV = FloatVector.fromArray(F, dlogits, row);
            for (int i = L; i < Vp; i += L) {
                sumV = sumV.add(FloatVector.fromArray(F, dlogits, row + i));
            }
            float sum = hsum(sumV, lanes);
            int target = tokens[tokOff + t + 1];
            loss -= logits[row + target] - max - Math.log(sum);
            float inv = scale / sum;
            for (int i = 0; i < Vp; i += L) {
                FloatVector.fromArray(F, dlogits, row + i).mul(inv).intoArray(dlogits, row + i);
            }
            dlogits[row + target] -= scale;
        }
        java.util.Arrays.fill(dlogits, (T - 1) * Vp, T * Vp, 0f);
        return loss;
    }

    // Elementwise kernels: whole vectors, then a scalar tail.

    static void add(float[] out, int outOff, float[] a, int aOff, float[] b, int bOff, int n) {
        int i = 0;
        for (int bound = F.loopBound(n); i < bound; i += F.length()) {
            FloatVector.fromArray(F, a, aOff + i).add(FloatVector.fromArray(F, b, bOff + i)).intoArray(out, outOff + i);
        }
        for (; i < n; i++) {
            out[outOff + i] = a[aOff + i] + b[bOff + i];
        }
    }

    static void relu(float[] out, int outOff, float[] inp, int inpOff, int n) {
        int i = 0;
        for (int bound = F.loopBound(n); i < bound; i += F.length()) {
            FloatVector.fromArray(F, inp, inpOff + i).max(FloatVector.zero(F)).intoArray(out, outOff + i);
        }
        for (; i < n; i++) {
            out[outOff + i] = Math.max(0f, inp[inpOff + i]);
        }
    }

    static void reluBackward(float[] dinp, int dinpOff, float[] dout, int doutOff, float[] inp, int inpOff, int n) {
        int i = 0;
        FloatVector zero = FloatVector.zero(F);
        for (int bound = F.loopBound(n); i < bound; i += F.length()) {
            var inactive = FloatVector.fromArray(F, inp, inpOff + i).compare(VectorOperators.LE, zero);
            FloatVector d = FloatVector.fromArray(F, dinp, dinpOff + i);
            d.add(FloatVector.fromArray(F, dout, doutOff + i).blend(zero, inactive)).intoArray(dinp, dinpOff + i);
        }
        for (; i < n; i++) {
            if (inp[inpOff + i] > 0f) {
                dinp[dinpOff + i] += dout[doutOff + i];
            }
        }
    }

    /** dbias[OC] += sum_t dout[t,:]; OC a whole number of vectors. */
    static void biasBackward(float[] dbias, int dbiasOff, float[] dout, int doutOff, int T, int OC) {
        for (int o = 0; o < OC; o += F.length()) {
            FloatVector acc = FloatVector.fromArray(F, dbias, dbiasOff + o);
            for (int t = 0; t < T; t++) {
                acc = acc.add(FloatVector.fromArray(F, dout, doutOff + t * OC + o));
            }
            acc.intoArray(dbias, dbiasOff + o);
        }
    }
}

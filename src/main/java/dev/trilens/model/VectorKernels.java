package dev.trilens.model;

import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * Vector-API versions of the hot kernels in {@link Kernels}, same arguments and results (up to float rounding).
 * Loaded only when the jdk.incubator.vector module is present; Kernels falls back to its scalar code otherwise.
 */
final class VectorKernels {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Double> DV = DoubleVector.SPECIES_PREFERRED;

    /** Per-thread [Dh+1, T] doubles for attnScoresForward: K transposed, then one row of scores. */
    private static final ThreadLocal<double[]> SCRATCH = ThreadLocal.withInitial(() -> new double[0]);

    private VectorKernels() {
    }

    /** out[T,OC] = inp[T,C] @ w[C,OC] + bias: lanes over OC, two rows at a time so each w load feeds two FMAs. */
    static void matmulForward(float[] out, int outOff, float[] inp, int inpOff, float[] w, int wOff,
                              float[] bias, int biasOff, int T, int C, int OC) {
        int L = F.length();
        int oBound = F.loopBound(OC);
        int t = 0;
        for (; t + 1 < T; t += 2) {
            int i0 = inpOff + t * C, i1 = i0 + C;
            for (int o = 0; o < oBound; o += L) {
                FloatVector acc0 = bias != null ? FloatVector.fromArray(F, bias, biasOff + o) : FloatVector.zero(F);
                FloatVector acc1 = acc0;
                for (int c = 0; c < C; c++) {
                    FloatVector wv = FloatVector.fromArray(F, w, wOff + c * OC + o);
                    acc0 = wv.fma(FloatVector.broadcast(F, inp[i0 + c]), acc0);
                    acc1 = wv.fma(FloatVector.broadcast(F, inp[i1 + c]), acc1);
                }
                acc0.intoArray(out, outOff + t * OC + o);
                acc1.intoArray(out, outOff + (t + 1) * OC + o);
            }
            matmulTail(out, outOff, inp, inpOff, w, wOff, bias, biasOff, t, t + 2, C, OC, oBound);
        }
        for (; t < T; t++) {
            int i0 = inpOff + t * C;
            for (int o = 0; o < oBound; o += L) {
                FloatVector acc0 = bias != null ? FloatVector.fromArray(F, bias, biasOff + o) : FloatVector.zero(F);
                for (int c = 0; c < C; c++) {
                    acc0 = FloatVector.fromArray(F, w, wOff + c * OC + o).fma(FloatVector.broadcast(F, inp[i0 + c]), acc0);
                }
                acc0.intoArray(out, outOff + t * OC + o);
            }
            matmulTail(out, outOff, inp, inpOff, w, wOff, bias, biasOff, t, t + 1, C, OC, oBound);
        }
    }

    /** The output columns past the last full vector, in scalar code. */
    private static void matmulTail(float[] out, int outOff, float[] inp, int inpOff, float[] w, int wOff,
                                   float[] bias, int biasOff, int tFrom, int tTo, int C, int OC, int oFrom) {
        for (int t = tFrom; t < tTo; t++) {
            for (int o = oFrom; o < OC; o++) {
                float acc = bias != null ? bias[biasOff + o] : 0f;
                for (int c = 0; c < C; c++) {
                    acc = Math.fma(inp[inpOff + t * C + c], w[wOff + c * OC + o], acc);
                }
                out[outOff + t * OC + o] = acc;
            }
        }
    }

    /** dw[C,OC] += inp^T @ dout: lanes over OC. */
    static void matmulBackwardWeight(float[] dw, int dwOff, float[] dout, int doutOff, float[] inp, int inpOff,
                                     int T, int C, int OC) {
        int L = F.length();
        int oBound = F.loopBound(OC);
        for (int c = 0; c < C; c++) {
            int dw_c = dwOff + c * OC;
            for (int o = 0; o < oBound; o += L) {
                FloatVector acc = FloatVector.fromArray(F, dw, dw_c + o);
                for (int t = 0; t < T; t++) {
                    acc = FloatVector.fromArray(F, dout, doutOff + t * OC + o).fma(FloatVector.broadcast(F, inp[inpOff + t * C + c]), acc);
                }
                acc.intoArray(dw, dw_c + o);
            }
            for (int o = oBound; o < OC; o++) {
                float acc = dw[dw_c + o];
                for (int t = 0; t < T; t++) {
                    acc = Math.fma(inp[inpOff + t * C + c], dout[doutOff + t * OC + o], acc);
                }
                dw[dw_c + o] = acc;
            }
        }
    }

    /** dinp[T,C] += dout[T,OC] @ wT[OC,C], with w already transposed so lanes run over C. */
    static void matmulBackwardInput(float[] dinp, int dinpOff, float[] dout, int doutOff, float[] wT, int wTOff,
                                    int T, int C, int OC) {
        matmulAccumulate(dinp, dinpOff, dout, doutOff, wT, wTOff, T, OC, C);
    }

    /** out[T,OC] += inp[T,C] @ w[C,OC]. */
    static void matmulAccumulate(float[] out, int outOff, float[] inp, int inpOff, float[] w, int wOff,
                                 int T, int C, int OC) {
        int L = F.length();
        int oBound = F.loopBound(OC);
        for (int t = 0; t < T; t++) {
            int i_t = inpOff + t * C;
            int o_t = outOff + t * OC;
            for (int o = 0; o < oBound; o += L) {
                FloatVector acc = FloatVector.fromArray(F, out, o_t + o);
                for (int c = 0; c < C; c++) {
                    acc = FloatVector.fromArray(F, w, wOff + c * OC + o).fma(FloatVector.broadcast(F, inp[i_t + c]), acc);
                }
                acc.intoArray(out, o_t + o);
            }
            for (int o = oBound; o < OC; o++) {
                float acc = out[o_t + o];
                for (int c = 0; c < C; c++) {
                    acc = Math.fma(inp[i_t + c], w[wOff + c * OC + o], acc);
                }
                out[o_t + o] = acc;
            }
        }
    }

    /**
     * scores[h,i,j] for j <= i, in double (see Kernels): k is transposed per head to kT[e][j] so that each query row
     * is a sum over e of q[i,e] * kT[e, 0..i], with lanes over j.
     */
    static void attnScoresForward(float[] scores, int sOff, float[] q, int qOff, float[] k, int kOff,
                                  int T, int H, int Dh) {
        double[] kT = SCRATCH.get();
        if (kT.length < (Dh + 1) * T) {
            kT = new double[(Dh + 1) * T];
            SCRATCH.set(kT);
        }
        int rowOff = Dh * T;
        double scale = 1.0 / Math.sqrt(Dh);
        int HDh = H * Dh;
        int L = DV.length();
        for (int h = 0; h < H; h++) {
            for (int j = 0; j < T; j++) {
                for (int e = 0; e < Dh; e++) {
                    kT[e * T + j] = k[kOff + j * HDh + h * Dh + e];
                }
            }
            for (int i = 0; i < T; i++) {
                int q_i = qOff + i * HDh + h * Dh;
                int n = i + 1;
                int jBound = DV.loopBound(n);
                for (int j = 0; j < jBound; j += L) {
                    DoubleVector acc = DoubleVector.zero(DV);
                    for (int e = 0; e < Dh; e++) {
                        acc = DoubleVector.fromArray(DV, kT, e * T + j).fma(DoubleVector.broadcast(DV, q[q_i + e]), acc);
                    }
                    acc.intoArray(kT, rowOff + j);
                }
                for (int j = jBound; j < n; j++) {
                    double acc = 0;
                    for (int e = 0; e < Dh; e++) {
                        acc += (double) q[q_i + e] * kT[e * T + j];
                    }
                    kT[rowOff + j] = acc;
                }
                int s_hi = sOff + (h * T + i) * T;
                for (int j = 0; j < n; j++) {
                    scores[s_hi + j] = (float) (kT[rowOff + j] * scale);
                }
                for (int j = n; j < T; j++) {
                    scores[s_hi + j] = Float.NEGATIVE_INFINITY;
                }
            }
        }
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
        for (int i = 0; i < T; i++) {
            for (int h = 0; h < H; h++) {
                int row = (h * T + i) * T;
                for (int e = 0; e < Dh; e += F.length()) {
                    FloatVector dzv = FloatVector.fromArray(F, dz, dzOff + i * HDh + h * Dh + e);
                    for (int j = 0; j <= i; j++) {
                        // z[i,h,e] += pattern[h,i,j] * v[j,h,e]
                        int at = j * HDh + h * Dh + e;
                        dpattern[dpOff + row + j] += dzv.mul(FloatVector.fromArray(F, v, vOff + at)).reduceLanes(
                                jdk.incubator.vector.VectorOperators.ADD);
                        FloatVector.fromArray(F, dv, dvOff + at)
                                .add(dzv.mul(pattern[pOff + row + j])).intoArray(dv, dvOff + at);
                    }
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
}

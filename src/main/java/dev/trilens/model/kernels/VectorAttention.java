package dev.trilens.model.kernels;

import static dev.trilens.model.kernels.VectorMath.F;
import static dev.trilens.model.kernels.VectorMath.scratch;
import static dev.trilens.model.kernels.VectorMath.exp;
import static dev.trilens.model.kernels.VectorMath.hsum;
import static dev.trilens.model.kernels.VectorMath.SOFTMAX_FLOOR;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;

/**
 * Attention for heads of Dh a whole number of vectors: scores, softmax and value mixing, query-major (inference
 * and training) and key-major (training).
 */
final class VectorAttention {
    private VectorAttention() {
    }

    /**
     * scores[h,i,j] = q[i,h,:] . k[j,h,:] / sqrt(Dh) for j <= i, -inf above the diagonal: per head, Q times K
     * transposed, lanes over j (see triangleDots).
     */
    static void attnScoresForward(float[] scores, int sOff, float[] q, int qOff, float[] k, int kOff,
                                  int T, int H, int Dh) {
        float[] kT = scratch(Dh * T);
        float scale = (float) (1.0 / Math.sqrt(Dh));
        for (int h = 0; h < H; h++) {
            transposeHead(kT, k, kOff, h, T, H, Dh);
            triangleDots(scores, sOff + h * T * T, q, qOff + h * Dh, H * Dh, kT, T, Dh, scale, Float.NEGATIVE_INFINITY,
                    false);
        }
    }

    /**
     * xT[e, j] = x[j, h, e]: one head's rows of x as a [Dh, T] matrix. Each output vector is one gather (a lane
     * count of rows, one column): 2-3x faster than scalar copies, whose stores stride across T.
     */
    private static void transposeHead(float[] xT, float[] x, int xOff, int h, int T, int H, int Dh) {
        int HDh = H * Dh, L = F.length();
        int[] rows = rowOffsets(HDh);
        for (int e = 0; e < Dh; e++) {
            int from = xOff + h * Dh + e, to = e * T;
            int j = 0;
            for (; j + L <= T; j += L) {
                FloatVector.fromArray(F, x, from + j * HDh, rows, 0).intoArray(xT, to + j);
            }
            for (; j < T; j++) {
                xT[to + j] = x[from + j * HDh];
            }
        }
    }

    /** Per-thread {0, stride, 2*stride, ...} (a lane count of them), the gather's index map for rows stride apart. */
    private static final ThreadLocal<int[]> ROW_OFFSETS = ThreadLocal.withInitial(() -> new int[0]);

    private static int[] rowOffsets(int stride) {
        int L = F.length();
        int[] idx = ROW_OFFSETS.get();
        if (idx.length != L || (L > 1 && idx[1] != stride)) {
            idx = new int[L];
            for (int i = 0; i < L; i++) {
                idx[i] = i * stride;
            }
            ROW_OFFSETS.set(idx);
        }
        return idx;
    }

    /**
     * A T x T triangle of dot products at outOff: out[r, c] = scale * (a[r,:] . bT[:, c]) for c <= r (query-major
     * scores, keysAfter false) or for c >= r (key-major, keysAfter true), and fill on the other side of the
     * diagonal. Row r of a starts at aOff + r*aStride and has Dh entries; bT is [Dh, T], T >= the lane count. Lanes
     * run over c, eight rows at a time, in tiles of two vectors of columns where the registers hold them (each
     * broadcast of a[r, e] then feeds two FMAs: the loop was bound by those broadcasts); a row's last vector may
     * overlap the one before it, recomputing the same values.
     */
    private static void triangleDots(float[] out, int outOff, float[] a, int aOff, int aStride, float[] bT, int T,
                                     int Dh, float scale, float fill, boolean keysAfter) {
        int L = F.length();
        int r = 0;
        for (; r + 7 < T; r += 8) {
            int a0 = aOff + r * aStride;
            int first = keysAfter ? r / L * L : 0, end = keysAfter ? T : r + 8;
            int blk = first;
            for (; VectorMatmul.WIDE_REGISTERS && blk + L < end; blk += 2 * L) {
                int cB = Math.min(blk + L, T - L);
                dots4x2(out, outOff + r * T, a, a0, aStride, bT, T, Dh, scale, blk, cB);
                dots4x2(out, outOff + (r + 4) * T, a, a0 + 4 * aStride, aStride, bT, T, Dh, scale, blk, cB);
            }
            for (; blk < end; blk += L) {
                dots8x1(out, outOff + r * T, a, a0, aStride, bT, T, Dh, scale, Math.min(blk, T - L));
            }
        }
        for (; r < T; r++) {
            int first = keysAfter ? r / L * L : 0, end = keysAfter ? T : r + 1;
            for (int blk = first; blk < end; blk += L) {
                int c = Math.min(blk, T - L);
                FloatVector s0 = FloatVector.zero(F);
                for (int e = 0; e < Dh; e++) {
                    s0 = FloatVector.fromArray(F, bT, e * T + c)
                            .fma(FloatVector.broadcast(F, a[aOff + r * aStride + e]), s0);
                }
                s0.mul(scale).intoArray(out, outOff + r * T + c);
            }
        }
        for (r = 0; r < T; r++) {
            if (keysAfter) {
                java.util.Arrays.fill(out, outOff + r * T, outOff + r * T + r, fill);
            } else {
                java.util.Arrays.fill(out, outOff + r * T + r + 1, outOff + (r + 1) * T, fill);
            }
        }
    }

    /** Eight rows of a triangle (rows of out at o, o + T, ...) at the columns c .. c+L-1. */
    private static void dots8x1(float[] out, int o, float[] a, int a0, int aStride, float[] bT, int T, int Dh,
                                float scale, int c) {
        FloatVector scaleV = FloatVector.broadcast(F, scale); // one broadcast, not one per store
        FloatVector s0 = FloatVector.zero(F), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0, s7 = s0;
        for (int e = 0; e < Dh; e++) {
            FloatVector bv = FloatVector.fromArray(F, bT, e * T + c);
            s0 = bv.fma(FloatVector.broadcast(F, a[a0 + e]), s0);
            s1 = bv.fma(FloatVector.broadcast(F, a[a0 + aStride + e]), s1);
            s2 = bv.fma(FloatVector.broadcast(F, a[a0 + 2 * aStride + e]), s2);
            s3 = bv.fma(FloatVector.broadcast(F, a[a0 + 3 * aStride + e]), s3);
            s4 = bv.fma(FloatVector.broadcast(F, a[a0 + 4 * aStride + e]), s4);
            s5 = bv.fma(FloatVector.broadcast(F, a[a0 + 5 * aStride + e]), s5);
            s6 = bv.fma(FloatVector.broadcast(F, a[a0 + 6 * aStride + e]), s6);
            s7 = bv.fma(FloatVector.broadcast(F, a[a0 + 7 * aStride + e]), s7);
        }
        o += c;
        s0.mul(scaleV).intoArray(out, o);
        s1.mul(scaleV).intoArray(out, o + T);
        s2.mul(scaleV).intoArray(out, o + 2 * T);
        s3.mul(scaleV).intoArray(out, o + 3 * T);
        s4.mul(scaleV).intoArray(out, o + 4 * T);
        s5.mul(scaleV).intoArray(out, o + 5 * T);
        s6.mul(scaleV).intoArray(out, o + 6 * T);
        s7.mul(scaleV).intoArray(out, o + 7 * T);
    }

    /**
     * Four rows of a triangle at two vectors of columns, cA .. cA+L-1 and cB .. cB+L-1 (which may overlap). Four rows,
     * not eight: with sixteen accumulators the method grew past what C2 parses before it stops inlining, and in
     * some JVMs its last stores then stayed calls that box their vectors (-XX:+PrintIntrinsics: "missing constant:
     * vclass=DecodeN"), doubling the attention kernels' time for the rest of the run.
     */
    private static void dots4x2(float[] out, int o, float[] a, int a0, int aStride, float[] bT, int T, int Dh,
                                float scale, int cA, int cB) {
        FloatVector s0 = FloatVector.zero(F), s1 = s0, s2 = s0, s3 = s0;
        FloatVector t0 = s0, t1 = s0, t2 = s0, t3 = s0;
        for (int e = 0; e < Dh; e++) {
            FloatVector bA = FloatVector.fromArray(F, bT, e * T + cA);
            FloatVector bB = FloatVector.fromArray(F, bT, e * T + cB);
            FloatVector x = FloatVector.broadcast(F, a[a0 + e]);
            s0 = bA.fma(x, s0);
            t0 = bB.fma(x, t0);
            x = FloatVector.broadcast(F, a[a0 + aStride + e]);
            s1 = bA.fma(x, s1);
            t1 = bB.fma(x, t1);
            x = FloatVector.broadcast(F, a[a0 + 2 * aStride + e]);
            s2 = bA.fma(x, s2);
            t2 = bB.fma(x, t2);
            x = FloatVector.broadcast(F, a[a0 + 3 * aStride + e]);
            s3 = bA.fma(x, s3);
            t3 = bB.fma(x, t3);
        }
        FloatVector scaleV = FloatVector.broadcast(F, scale);
        int oA = o + cA, oB = o + cB;
        s0.mul(scaleV).intoArray(out, oA);
        t0.mul(scaleV).intoArray(out, oB);
        s1.mul(scaleV).intoArray(out, oA + T);
        t1.mul(scaleV).intoArray(out, oB + T);
        s2.mul(scaleV).intoArray(out, oA + 2 * T);
        t2.mul(scaleV).intoArray(out, oB + 2 * T);
        s3.mul(scaleV).intoArray(out, oA + 3 * T);
        t3.mul(scaleV).intoArray(out, oB + 3 * T);
    }

    /**
     * out[i,:] += scale * sum_{j<=i} coef[i,j] * vec[j,:] for i < T: rows of Dh floats (whole vectors) at
     * outOff + i*stride and vOff + j*stride; coef[i,j] at cOff + i*ci + j*cj (ci = T, cj = 1 for a query-major
     * pattern, the other way round for a key-major one). Eight rows share each vec load; entries of coef above the
     * diagonal are never read.
     */
    private static void causalRowMix(float[] out, int outOff, float[] coef, int cOff, int ci, int cj, float[] vec,
                                     int vOff, int stride, int T, int Dh, float scale) {
        int L = F.length();
        FloatVector scaleV = FloatVector.broadcast(F, scale);
        for (int e = 0; e < Dh; e += L) {
            int i = 0;
            for (; i + 7 < T; i += 8) {
                int c0 = cOff + i * ci;
                FloatVector s0 = FloatVector.zero(F), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0, s7 = s0;
                FloatVector vj;
                for (int j = 0; j <= i; j++) {
                    vj = FloatVector.fromArray(F, vec, vOff + j * stride + e);
                    s0 = vj.fma(FloatVector.broadcast(F, coef[c0 + j * cj]), s0);
                    s1 = vj.fma(FloatVector.broadcast(F, coef[c0 + ci + j * cj]), s1);
                    s2 = vj.fma(FloatVector.broadcast(F, coef[c0 + 2 * ci + j * cj]), s2);
                    s3 = vj.fma(FloatVector.broadcast(F, coef[c0 + 3 * ci + j * cj]), s3);
                    s4 = vj.fma(FloatVector.broadcast(F, coef[c0 + 4 * ci + j * cj]), s4);
                    s5 = vj.fma(FloatVector.broadcast(F, coef[c0 + 5 * ci + j * cj]), s5);
                    s6 = vj.fma(FloatVector.broadcast(F, coef[c0 + 6 * ci + j * cj]), s6);
                    s7 = vj.fma(FloatVector.broadcast(F, coef[c0 + 7 * ci + j * cj]), s7);
                }
                // the triangle: row i+r also takes j = i+1 .. i+r. Rows past their diagonal get a zero weight rather
                // than a branch: C2 cannot keep vectors that are assigned in branches in registers.
                for (int j = i + 1; j < i + 8; j++) {
                    vj = FloatVector.fromArray(F, vec, vOff + j * stride + e);
                    s1 = vj.fma(FloatVector.broadcast(F, j <= i + 1 ? coef[c0 + ci + j * cj] : 0f), s1);
                    s2 = vj.fma(FloatVector.broadcast(F, j <= i + 2 ? coef[c0 + 2 * ci + j * cj] : 0f), s2);
                    s3 = vj.fma(FloatVector.broadcast(F, j <= i + 3 ? coef[c0 + 3 * ci + j * cj] : 0f), s3);
                    s4 = vj.fma(FloatVector.broadcast(F, j <= i + 4 ? coef[c0 + 4 * ci + j * cj] : 0f), s4);
                    s5 = vj.fma(FloatVector.broadcast(F, j <= i + 5 ? coef[c0 + 5 * ci + j * cj] : 0f), s5);
                    s6 = vj.fma(FloatVector.broadcast(F, j <= i + 6 ? coef[c0 + 6 * ci + j * cj] : 0f), s6);
                    s7 = vj.fma(FloatVector.broadcast(F, coef[c0 + 7 * ci + j * cj]), s7);
                }
                int o = outOff + i * stride + e;
                s0.fma(scaleV, FloatVector.fromArray(F, out, o)).intoArray(out, o);
                s1.fma(scaleV, FloatVector.fromArray(F, out, o + stride)).intoArray(out, o + stride);
                s2.fma(scaleV, FloatVector.fromArray(F, out, o + 2 * stride)).intoArray(out, o + 2 * stride);
                s3.fma(scaleV, FloatVector.fromArray(F, out, o + 3 * stride)).intoArray(out, o + 3 * stride);
                s4.fma(scaleV, FloatVector.fromArray(F, out, o + 4 * stride)).intoArray(out, o + 4 * stride);
                s5.fma(scaleV, FloatVector.fromArray(F, out, o + 5 * stride)).intoArray(out, o + 5 * stride);
                s6.fma(scaleV, FloatVector.fromArray(F, out, o + 6 * stride)).intoArray(out, o + 6 * stride);
                s7.fma(scaleV, FloatVector.fromArray(F, out, o + 7 * stride)).intoArray(out, o + 7 * stride);
            }
            for (; i < T; i++) {
                FloatVector s0 = FloatVector.zero(F);
                for (int j = 0; j <= i; j++) {
                    s0 = FloatVector.fromArray(F, vec, vOff + j * stride + e)
                            .fma(FloatVector.broadcast(F, coef[cOff + i * ci + j * cj]), s0);
                }
                int at = outOff + i * stride + e;
                s0.fma(scaleV, FloatVector.fromArray(F, out, at)).intoArray(out, at);
            }
        }
    }

    /**
     * out[j,:] += scale * sum_{i>=j} coef[i,j] * vec[i,:] for j < T: the transpose of causalRowMix, with the same
     * layouts. Eight columns j share each vec load; entries of coef above the diagonal are never read.
     */
    private static void causalColMix(float[] out, int outOff, float[] coef, int cOff, int ci, int cj, float[] vec,
                                     int vOff, int stride, int T, int Dh, float scale) {
        int L = F.length();
        FloatVector scaleV = FloatVector.broadcast(F, scale);
        for (int e = 0; e < Dh; e += L) {
            int j = 0;
            for (; j + 7 < T; j += 8) {
                FloatVector s0 = FloatVector.zero(F), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0, s7 = s0;
                // the triangle: column j+r starts at i = j+r; earlier rows get a zero weight, as in causalRowMix
                FloatVector vi;
                for (int i = j; i < j + 7; i++) {
                    vi = FloatVector.fromArray(F, vec, vOff + i * stride + e);
                    int at = cOff + i * ci + j * cj;
                    s0 = vi.fma(FloatVector.broadcast(F, coef[at]), s0);
                    s1 = vi.fma(FloatVector.broadcast(F, i >= j + 1 ? coef[at + cj] : 0f), s1);
                    s2 = vi.fma(FloatVector.broadcast(F, i >= j + 2 ? coef[at + 2 * cj] : 0f), s2);
                    s3 = vi.fma(FloatVector.broadcast(F, i >= j + 3 ? coef[at + 3 * cj] : 0f), s3);
                    s4 = vi.fma(FloatVector.broadcast(F, i >= j + 4 ? coef[at + 4 * cj] : 0f), s4);
                    s5 = vi.fma(FloatVector.broadcast(F, i >= j + 5 ? coef[at + 5 * cj] : 0f), s5);
                    s6 = vi.fma(FloatVector.broadcast(F, i >= j + 6 ? coef[at + 6 * cj] : 0f), s6);
                }
                for (int i = j + 7; i < T; i++) {
                    vi = FloatVector.fromArray(F, vec, vOff + i * stride + e);
                    int at = cOff + i * ci + j * cj;
                    s0 = vi.fma(FloatVector.broadcast(F, coef[at]), s0);
                    s1 = vi.fma(FloatVector.broadcast(F, coef[at + cj]), s1);
                    s2 = vi.fma(FloatVector.broadcast(F, coef[at + 2 * cj]), s2);
                    s3 = vi.fma(FloatVector.broadcast(F, coef[at + 3 * cj]), s3);
                    s4 = vi.fma(FloatVector.broadcast(F, coef[at + 4 * cj]), s4);
                    s5 = vi.fma(FloatVector.broadcast(F, coef[at + 5 * cj]), s5);
                    s6 = vi.fma(FloatVector.broadcast(F, coef[at + 6 * cj]), s6);
                    s7 = vi.fma(FloatVector.broadcast(F, coef[at + 7 * cj]), s7);
                }
                int o = outOff + j * stride + e;
                s0.fma(scaleV, FloatVector.fromArray(F, out, o)).intoArray(out, o);
                s1.fma(scaleV, FloatVector.fromArray(F, out, o + stride)).intoArray(out, o + stride);
                s2.fma(scaleV, FloatVector.fromArray(F, out, o + 2 * stride)).intoArray(out, o + 2 * stride);
                s3.fma(scaleV, FloatVector.fromArray(F, out, o + 3 * stride)).intoArray(out, o + 3 * stride);
                s4.fma(scaleV, FloatVector.fromArray(F, out, o + 4 * stride)).intoArray(out, o + 4 * stride);
                s5.fma(scaleV, FloatVector.fromArray(F, out, o + 5 * stride)).intoArray(out, o + 5 * stride);
                s6.fma(scaleV, FloatVector.fromArray(F, out, o + 6 * stride)).intoArray(out, o + 6 * stride);
                s7.fma(scaleV, FloatVector.fromArray(F, out, o + 7 * stride)).intoArray(out, o + 7 * stride);
            }
            for (; j < T; j++) {
                FloatVector s0 = FloatVector.zero(F);
                for (int i = j; i < T; i++) {
                    s0 = FloatVector.fromArray(F, vec, vOff + i * stride + e)
                            .fma(FloatVector.broadcast(F, coef[cOff + i * ci + j * cj]), s0);
                }
                int at = outOff + j * stride + e;
                s0.fma(scaleV, FloatVector.fromArray(F, out, at)).intoArray(out, at);
            }
        }
    }

    // The attention kernels below need Dh to be a multiple of the lane count; VectorOps checks before calling.

    /** z[i,h,:] = sum_{j<=i} pattern[h,i,j] * v[j,h,:]. */
    static void attnValuesForward(float[] z, int zOff, float[] pattern, int pOff, float[] v, int vOff,
                                  int T, int H, int Dh) {
        java.util.Arrays.fill(z, zOff, zOff + T * H * Dh, 0f); // causalRowMix adds
        for (int h = 0; h < H; h++) {
            causalRowMix(z, zOff + h * Dh, pattern, pOff + h * T * T, T, 1, v, vOff + h * Dh, H * Dh, T, Dh, 1f);
        }
    }

    /**
     * dpattern[h,i,j] = dz[i,h,:] . v[j,h,:] for j <= i (0 above); dv[j,h,:] += sum_{i>=j} pattern[h,i,j] dz[i,h,:].
     */
    static void attnValuesBackward(float[] dpattern, int dpOff, float[] dv, int dvOff, float[] dz, int dzOff,
                                   float[] pattern, int pOff, float[] v, int vOff, int T, int H, int Dh) {
        float[] vT = scratch(Dh * T);
        for (int h = 0; h < H; h++) {
            transposeHead(vT, v, vOff, h, T, H, Dh);
            triangleDots(dpattern, dpOff + h * T * T, dz, dzOff + h * Dh, H * Dh, vT, T, Dh, 1f, 0f, false);
            causalColMix(dv, dvOff + h * Dh, pattern, pOff + h * T * T, T, 1, dz, dzOff + h * Dh, H * Dh, T, Dh, 1f);
        }
    }

    /** dq[i] += scale * sum_{j<=i} dscores[i,j] k[j]; dk[j] += scale * sum_{i>=j} dscores[i,j] q[i], per head. */
    static void attnScoresBackward(float[] dq, int dqOff, float[] dk, int dkOff, float[] dscores, int dsOff,
                                   float[] q, int qOff, float[] k, int kOff, int T, int H, int Dh) {
        float scale = (float) (1.0 / Math.sqrt(Dh));
        int HDh = H * Dh;
        for (int h = 0; h < H; h++) {
            int s_h = dsOff + h * T * T;
            causalRowMix(dq, dqOff + h * Dh, dscores, s_h, T, 1, k, kOff + h * Dh, HDh, T, Dh, scale);
            causalColMix(dk, dkOff + h * Dh, dscores, s_h, T, 1, q, qOff + h * Dh, HDh, T, Dh, scale);
        }
    }

    // ---------------------------------------------------------------------------------------------------------
    // Key-major attention, for training: scores, pattern and their gradients stored [h, j, i] (key j, query i).
    // Lanes then run over queries, so the softmax over keys and its backward are vertical: no sums across lanes
    // and no scalar tails, which made the query-major softmax the slowest kernel per flop. Query blocks may overlap
    // (the last vector of a triangle row, the first block of a softmax); every kernel here writes (not accumulates),
    // so overlapped lanes are recomputed identically. Needs T >= the lane count and Dh a multiple of it.

    /** scoresT[h,j,i] = q[i,h,:] . k[j,h,:] / sqrt(Dh) for i >= j, -inf for i < j. */
    static void attnScoresForwardKeyMajor(float[] scoresT, int sOff, float[] q, int qOff, float[] k, int kOff,
                                          int T, int H, int Dh) {
        float[] qT = scratch(Dh * T);
        float scale = (float) (1.0 / Math.sqrt(Dh));
        for (int h = 0; h < H; h++) {
            transposeHead(qT, q, qOff, h, T, H, Dh);
            triangleDots(scoresT, sOff + h * T * T, k, kOff + h * Dh, H * Dh, qT, T, Dh, scale, Float.NEGATIVE_INFINITY,
                    true);
        }
    }

    /** patternT[h,:,i] = softmax over keys of scoresT[h,:,i], sixteen (the lane count) queries at a time. */
    static void softmaxForwardKeyMajor(float[] patternT, int pOff, float[] scoresT, int sOff, int T, int H) {
        int L = F.length();
        for (int h = 0; h < H; h++) {
            int base = h * T * T;
            // blocks of queries taken from the end, T-L..T-1 first: a block needs the keys up to its last query,
            // so the one that overlaps its neighbour is queries 0..L-1, with L keys, rather than T-L..T-1 with T
            for (int end = T; end > 0; end -= L) {
                int i = Math.max(end - L, 0);
                // keys after the block's last query are masked in every lane
                int keys = i + L;
                FloatVector max = FloatVector.fromArray(F, scoresT, sOff + base + i);
                for (int j = 1; j < keys; j++) {
                    max = max.max(FloatVector.fromArray(F, scoresT, sOff + base + j * T + i));
                }
                FloatVector sum = FloatVector.zero(F);
                for (int j = 0; j < keys; j++) {
                    FloatVector s = FloatVector.fromArray(F, scoresT, sOff + base + j * T + i);
                    FloatVector e = exp(s.sub(max), SOFTMAX_FLOOR);
                    e.intoArray(patternT, pOff + base + j * T + i);
                    sum = sum.add(e);
                }
                FloatVector inv = FloatVector.broadcast(F, 1f).div(sum);
                for (int j = 0; j < keys; j++) {
                    int at = pOff + base + j * T + i;
                    FloatVector.fromArray(F, patternT, at).mul(inv).intoArray(patternT, at);
                }
                for (int j = keys; j < T; j++) {
                    FloatVector.zero(F).intoArray(patternT, pOff + base + j * T + i);
                }
            }
        }
    }

    /** z[i,h,:] = sum_{j<=i} patternT[h,j,i] * v[j,h,:]. */
    static void attnValuesForwardKeyMajor(float[] z, int zOff, float[] patternT, int pOff, float[] v, int vOff,
                                          int T, int H, int Dh) {
        java.util.Arrays.fill(z, zOff, zOff + T * H * Dh, 0f); // causalRowMix adds
        for (int h = 0; h < H; h++) {
            causalRowMix(z, zOff + h * Dh, patternT, pOff + h * T * T, 1, T, v, vOff + h * Dh, H * Dh, T, Dh, 1f);
        }
    }

    /**
     * dpatternT[h,j,i] = dz[i,h,:] . v[j,h,:] for i >= j (0 for i < j);
     * dv[j,h,:] += sum_{i>=j} patternT[h,j,i] dz[i,h,:].
     */
    static void attnValuesBackwardKeyMajor(float[] dpatternT, int dpOff, float[] dv, int dvOff, float[] dz, int dzOff,
                                           float[] patternT, int pOff, float[] v, int vOff, int T, int H, int Dh) {
        float[] dzT = scratch(Dh * T);
        for (int h = 0; h < H; h++) {
            transposeHead(dzT, dz, dzOff, h, T, H, Dh);
            triangleDots(dpatternT, dpOff + h * T * T, v, vOff + h * Dh, H * Dh, dzT, T, Dh, 1f, 0f, true);
            causalColMix(dv, dvOff + h * Dh, patternT, pOff + h * T * T, 1, T, dz, dzOff + h * Dh, H * Dh, T, Dh, 1f);
        }
    }

    /**
     * dscoresT = patternT * (dpatternT - sum over keys of patternT * dpatternT), per query lane; written, not added.
     */
    static void softmaxBackwardKeyMajor(float[] dscoresT, int dsOff, float[] dpatternT, int dpOff, float[] patternT,
                                        int pOff, int T, int H) {
        int L = F.length();
        for (int h = 0; h < H; h++) {
            int base = h * T * T;
            for (int end = T; end > 0; end -= L) { // blocks as in softmaxForwardKeyMajor
                int i = Math.max(end - L, 0);
                int keys = i + L;
                FloatVector dot = FloatVector.zero(F);
                for (int j = 0; j < keys; j++) {
                    dot = FloatVector.fromArray(F, patternT, pOff + base + j * T + i)
                            .fma(FloatVector.fromArray(F, dpatternT, dpOff + base + j * T + i), dot);
                }
                for (int j = 0; j < keys; j++) {
                    FloatVector p = FloatVector.fromArray(F, patternT, pOff + base + j * T + i);
                    p.mul(FloatVector.fromArray(F, dpatternT, dpOff + base + j * T + i).sub(dot))
                            .intoArray(dscoresT, dsOff + base + j * T + i);
                }
                for (int j = keys; j < T; j++) {
                    FloatVector.zero(F).intoArray(dscoresT, dsOff + base + j * T + i);
                }
            }
        }
    }

    /** dq[i] += scale * sum_{j<=i} dscoresT[j,i] k[j]; dk[j] += scale * sum_{i>=j} dscoresT[j,i] q[i], per head. */
    static void attnScoresBackwardKeyMajor(float[] dq, int dqOff, float[] dk, int dkOff, float[] dscoresT, int dsOff,
                                           float[] q, int qOff, float[] k, int kOff, int T, int H, int Dh) {
        float scale = (float) (1.0 / Math.sqrt(Dh));
        int HDh = H * Dh;
        for (int h = 0; h < H; h++) {
            int s_h = dsOff + h * T * T;
            causalRowMix(dq, dqOff + h * Dh, dscoresT, s_h, 1, T, k, kOff + h * Dh, HDh, T, Dh, scale);
            causalColMix(dk, dkOff + h * Dh, dscoresT, s_h, 1, T, q, qOff + h * Dh, HDh, T, Dh, scale);
        }
    }

    /**
     * pattern rows = softmax(score rows), exp in vector lanes; -inf scores give exactly 0. Each row in two calls that
     * are compiled on their own ({@link VectorOps#softmaxRowExp}, {@link VectorOps#softmaxRowScale}, never inlined):
     * as one loop body C2 sometimes ran out of its inlining budget part-way, left the rest of the row's vector
     * operations as calls, and the kernel then allocated a vector object per operation for the rest of the run
     * (in about a third of cold `dynamics` runs: gigabytes of garbage, 1,300 collections instead of 250).
     */
    static void softmaxForward(float[] pattern, int pOff, float[] scores, int sOff, int T, int H) {
        for (int r = 0; r < H * T; r++) {
            VectorOps.softmaxRowExp(pattern, pOff + r * T, scores, sOff + r * T, T);
            VectorOps.softmaxRowScale(pattern, pOff + r * T, T);
        }
    }

    /** pattern[p_r + j] = e^(scores[s_r + j] - max), 0 where the score is -inf; T >= the vector length. */
    static void softmaxRowExp(float[] pattern, int p_r, float[] scores, int s_r, int T) {
        int L = F.length();
        int jBound = F.loopBound(T);
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
                exp(sv.sub(max), SOFTMAX_FLOOR).intoArray(pattern, p_r + j);
            } else {
                FloatVector.zero(F).intoArray(pattern, p_r + j);
            }
        }
    }

    /** pattern[p_r .. p_r + T) divided by its sum (lane sums, hsum, then the tail); T >= the vector length. */
    static void softmaxRowScale(float[] pattern, int p_r, int T) {
        int L = F.length();
        int jBound = F.loopBound(T);
        FloatVector sumV = FloatVector.zero(F);
        for (int j = 0; j < jBound; j += L) {
            sumV = sumV.add(FloatVector.fromArray(F, pattern, p_r + j));
        }
        float sum = hsum(sumV);
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

    /** dscores[j] += p[j] * (dp[j] - sum_k p[k] dp[k]); entries above the diagonal have p = 0 and add nothing. */
    static void softmaxBackward(float[] dscores, int dsOff, float[] dpattern, int dpOff, float[] pattern, int pOff,
                                int T, int H) {
        int L = F.length();
        for (int r = 0; r < H * T; r++) {
            int row = r * T;
            int n = r % T + 1;
            int jBound = F.loopBound(n);
            FloatVector dotV = FloatVector.zero(F);
            for (int j = 0; j < jBound; j += L) {
                dotV = FloatVector.fromArray(F, pattern, pOff + row + j)
                        .fma(FloatVector.fromArray(F, dpattern, dpOff + row + j), dotV);
            }
            float dot = hsum(dotV);
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
}

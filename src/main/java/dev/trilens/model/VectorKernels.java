package dev.trilens.model;

import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * Vector-API versions of the hot kernels in {@link Kernels}, same arguments and results (up to float rounding).
 * Loaded only when the jdk.incubator.vector module is present; Kernels falls back to its scalar code otherwise.
 */
final class VectorKernels {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Double> DV = DoubleVector.SPECIES_PREFERRED;

    /** Per-thread scratch: K or V transposed to [Dh, T], and for the scores Q of one head [T, Dh]. */
    private static final ThreadLocal<float[]> FLOAT_SCRATCH = ThreadLocal.withInitial(() -> new float[0]);

    private VectorKernels() {
    }

    /**
     * out[T,OC] = inp[T,C] @ w[C,OC] + bias, lanes over OC: in register tiles (see tiles) when OC is a whole number
     * of vectors, as every training width is. Otherwise four rows at a time, and the last vector of a row overlaps
     * the one before it: the overlapped columns are computed twice, identically, which is cheaper than a scalar
     * tail (and other vector widths in the same loop would stop the JIT from compiling the vector code at all).
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
        if (OC % L == 0) {
            matmulTiled(out, outOff, inp, inpOff, w, wOff, bias, biasOff, accumulate, T, C, OC);
            return;
        }
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

    // Register tiles. An FMA has a latency of about four cycles and two can start per cycle, so a loop needs eight or
    // more independent accumulators to keep the units busy; a tile of 8 rows x 2 vectors holds sixteen, and each
    // weight vector it loads feeds eight FMAs. Outputs five or more vectors wide use 4 x 5 tiles (twenty), where
    // each broadcast input feeds five FMAs instead of two. AVX-512 has 32 vector registers, enough for either tile
    // and its operands.

    /** out[T,OC] (= bias | += ) inp[T,C] @ w[C,OC] for OC a whole number of vectors. */
    private static void matmulTiled(float[] out, int outOff, float[] inp, int inpOff, float[] w, int wOff,
                                    float[] bias, int biasOff, boolean accumulate, int T, int C, int OC) {
        tiles(out, outOff, inp, inpOff, C, 1, w, wOff, bias, biasOff, accumulate, T, C, OC);
    }

    /**
     * For each of `rows` rows r and OC columns (whole vectors): out[outOff + r*OC + o] (+)= sum over k < n of
     * x[xOff + r*xr + k*xs] * w[wOff + k*OC + o]: groups of five vectors in tiles of 4 rows (the rest one row at a
     * time), then pairs of vectors in tiles of 8 rows (then 2, then 1), then a last single vector the same way.
     */
    private static void tiles(float[] out, int outOff, float[] x, int xOff, int xr, int xs, float[] w, int wOff,
                              float[] bias, int biasOff, boolean accumulate, int rows, int n, int OC) {
        int L = F.length();
        int o = 0;
        // five vectors wide (the unembed's 80 columns): each broadcast feeds five FMAs instead of two
        for (; o + 5 * L <= OC; o += 5 * L) {
            int r = 0;
            for (; r + 3 < rows; r += 4) {
                rows4x5(out, outOff + r * OC + o, OC, x, xOff + r * xr, xr, xs, w, wOff + o, OC, bias, biasOff + o,
                        accumulate, n);
            }
            for (; r < rows; r++) {
                for (int v = o; v < o + 5 * L; v += L) {
                    rowsNx1(out, outOff + r * OC + v, OC, x, xOff + r * xr, xr, xs, w, wOff + v, OC, bias,
                            biasOff + v, accumulate, 1, n);
                }
            }
        }
        for (; o + 2 * L <= OC; o += 2 * L) {
            int r = 0;
            for (; r + 7 < rows; r += 8) {
                rows8x2(out, outOff + r * OC + o, OC, x, xOff + r * xr, xr, xs, w, wOff + o, OC, bias, biasOff + o,
                        accumulate, n);
            }
            // the rest two rows at a time (T = 50 leaves two): still four independent chains
            for (; r + 1 < rows; r += 2) {
                rows2x2(out, outOff + r * OC + o, OC, x, xOff + r * xr, xr, xs, w, wOff + o, OC, bias, biasOff + o,
                        accumulate, n);
            }
            for (; r < rows; r++) {
                for (int v = o; v < o + 2 * L; v += L) {
                    rowsNx1(out, outOff + r * OC + v, OC, x, xOff + r * xr, xr, xs, w, wOff + v, OC, bias,
                            biasOff + v, accumulate, 1, n);
                }
            }
        }
        for (; o < OC; o += L) {
            int r = 0;
            for (; r + 7 < rows; r += 8) {
                rowsNx1(out, outOff + r * OC + o, OC, x, xOff + r * xr, xr, xs, w, wOff + o, OC, bias, biasOff + o,
                        accumulate, 8, n);
            }
            for (; r + 1 < rows; r += 2) {
                rowsNx1(out, outOff + r * OC + o, OC, x, xOff + r * xr, xr, xs, w, wOff + o, OC, bias, biasOff + o,
                        accumulate, 2, n);
            }
            for (; r < rows; r++) {
                rowsNx1(out, outOff + r * OC + o, OC, x, xOff + r * xr, xr, xs, w, wOff + o, OC, bias, biasOff + o,
                        accumulate, 1, n);
            }
        }
    }

    private static FloatVector start(float[] out, int at, float[] bias, int biasAt, boolean accumulate) {
        if (accumulate) {
            return FloatVector.fromArray(F, out, at);
        }
        return bias != null ? FloatVector.fromArray(F, bias, biasAt) : FloatVector.zero(F);
    }

    /**
     * Eight rows x two vectors: out[o + r*os + (0|L)] (+)= sum over k < n of x[i + r*xr + k*xs] * w[wo + k*ws + (0|L)].
     * A forward matmul walks k over input channels (xr = C, xs = 1); the weight gradient walks k over positions
     * (xr = 1, xs = C), with dout in the role of w.
     */
    private static void rows8x2(float[] out, int o, int os, float[] x, int i, int xr, int xs, float[] w, int wo,
                                int ws, float[] bias, int bo, boolean accumulate, int n) {
        int L = F.length();
        FloatVector a0 = start(out, o, bias, bo, accumulate), b0 = start(out, o + L, bias, bo + L, accumulate);
        FloatVector a1 = start(out, o + os, bias, bo, accumulate);
        FloatVector b1 = start(out, o + os + L, bias, bo + L, accumulate);
        FloatVector a2 = start(out, o + 2 * os, bias, bo, accumulate);
        FloatVector b2 = start(out, o + 2 * os + L, bias, bo + L, accumulate);
        FloatVector a3 = start(out, o + 3 * os, bias, bo, accumulate);
        FloatVector b3 = start(out, o + 3 * os + L, bias, bo + L, accumulate);
        FloatVector a4 = start(out, o + 4 * os, bias, bo, accumulate);
        FloatVector b4 = start(out, o + 4 * os + L, bias, bo + L, accumulate);
        FloatVector a5 = start(out, o + 5 * os, bias, bo, accumulate);
        FloatVector b5 = start(out, o + 5 * os + L, bias, bo + L, accumulate);
        FloatVector a6 = start(out, o + 6 * os, bias, bo, accumulate);
        FloatVector b6 = start(out, o + 6 * os + L, bias, bo + L, accumulate);
        FloatVector a7 = start(out, o + 7 * os, bias, bo, accumulate);
        FloatVector b7 = start(out, o + 7 * os + L, bias, bo + L, accumulate);
        for (int c = 0; c < n; c++) {
            FloatVector wa = FloatVector.fromArray(F, w, wo + c * ws);
            FloatVector wb = FloatVector.fromArray(F, w, wo + c * ws + L);
            FloatVector xv = FloatVector.broadcast(F, x[i + c * xs]);
            a0 = wa.fma(xv, a0);
            b0 = wb.fma(xv, b0);
            xv = FloatVector.broadcast(F, x[i + xr + c * xs]);
            a1 = wa.fma(xv, a1);
            b1 = wb.fma(xv, b1);
            xv = FloatVector.broadcast(F, x[i + 2 * xr + c * xs]);
            a2 = wa.fma(xv, a2);
            b2 = wb.fma(xv, b2);
            xv = FloatVector.broadcast(F, x[i + 3 * xr + c * xs]);
            a3 = wa.fma(xv, a3);
            b3 = wb.fma(xv, b3);
            xv = FloatVector.broadcast(F, x[i + 4 * xr + c * xs]);
            a4 = wa.fma(xv, a4);
            b4 = wb.fma(xv, b4);
            xv = FloatVector.broadcast(F, x[i + 5 * xr + c * xs]);
            a5 = wa.fma(xv, a5);
            b5 = wb.fma(xv, b5);
            xv = FloatVector.broadcast(F, x[i + 6 * xr + c * xs]);
            a6 = wa.fma(xv, a6);
            b6 = wb.fma(xv, b6);
            xv = FloatVector.broadcast(F, x[i + 7 * xr + c * xs]);
            a7 = wa.fma(xv, a7);
            b7 = wb.fma(xv, b7);
        }
        a0.intoArray(out, o);
        b0.intoArray(out, o + L);
        a1.intoArray(out, o + os);
        b1.intoArray(out, o + os + L);
        a2.intoArray(out, o + 2 * os);
        b2.intoArray(out, o + 2 * os + L);
        a3.intoArray(out, o + 3 * os);
        b3.intoArray(out, o + 3 * os + L);
        a4.intoArray(out, o + 4 * os);
        b4.intoArray(out, o + 4 * os + L);
        a5.intoArray(out, o + 5 * os);
        b5.intoArray(out, o + 5 * os + L);
        a6.intoArray(out, o + 6 * os);
        b6.intoArray(out, o + 6 * os + L);
        a7.intoArray(out, o + 7 * os);
        b7.intoArray(out, o + 7 * os + L);
    }

    /** Four rows x five vectors; the same addressing as rows8x2. */
    private static void rows4x5(float[] out, int o, int os, float[] x, int i, int xr, int xs, float[] w, int wo,
                                int ws, float[] bias, int bo, boolean accumulate, int n) {
        int L = F.length();
        FloatVector a0 = start(out, o, bias, bo, accumulate), b0 = start(out, o + L, bias, bo + L, accumulate);
        FloatVector c0 = start(out, o + 2 * L, bias, bo + 2 * L, accumulate);
        FloatVector d0 = start(out, o + 3 * L, bias, bo + 3 * L, accumulate);
        FloatVector e0 = start(out, o + 4 * L, bias, bo + 4 * L, accumulate);
        FloatVector a1 = start(out, o + os, bias, bo, accumulate), b1 = start(out, o + os + L, bias, bo + L, accumulate);
        FloatVector c1 = start(out, o + os + 2 * L, bias, bo + 2 * L, accumulate);
        FloatVector d1 = start(out, o + os + 3 * L, bias, bo + 3 * L, accumulate);
        FloatVector e1 = start(out, o + os + 4 * L, bias, bo + 4 * L, accumulate);
        int o2 = o + 2 * os, o3 = o + 3 * os;
        FloatVector a2 = start(out, o2, bias, bo, accumulate), b2 = start(out, o2 + L, bias, bo + L, accumulate);
        FloatVector c2 = start(out, o2 + 2 * L, bias, bo + 2 * L, accumulate);
        FloatVector d2 = start(out, o2 + 3 * L, bias, bo + 3 * L, accumulate);
        FloatVector e2 = start(out, o2 + 4 * L, bias, bo + 4 * L, accumulate);
        FloatVector a3 = start(out, o3, bias, bo, accumulate), b3 = start(out, o3 + L, bias, bo + L, accumulate);
        FloatVector c3 = start(out, o3 + 2 * L, bias, bo + 2 * L, accumulate);
        FloatVector d3 = start(out, o3 + 3 * L, bias, bo + 3 * L, accumulate);
        FloatVector e3 = start(out, o3 + 4 * L, bias, bo + 4 * L, accumulate);
        for (int c = 0; c < n; c++) {
            int wc = wo + c * ws;
            FloatVector wa = FloatVector.fromArray(F, w, wc), wb = FloatVector.fromArray(F, w, wc + L);
            FloatVector wcv = FloatVector.fromArray(F, w, wc + 2 * L), wd = FloatVector.fromArray(F, w, wc + 3 * L);
            FloatVector we = FloatVector.fromArray(F, w, wc + 4 * L);
            FloatVector xv = FloatVector.broadcast(F, x[i + c * xs]);
            a0 = wa.fma(xv, a0);
            b0 = wb.fma(xv, b0);
            c0 = wcv.fma(xv, c0);
            d0 = wd.fma(xv, d0);
            e0 = we.fma(xv, e0);
            xv = FloatVector.broadcast(F, x[i + xr + c * xs]);
            a1 = wa.fma(xv, a1);
            b1 = wb.fma(xv, b1);
            c1 = wcv.fma(xv, c1);
            d1 = wd.fma(xv, d1);
            e1 = we.fma(xv, e1);
            xv = FloatVector.broadcast(F, x[i + 2 * xr + c * xs]);
            a2 = wa.fma(xv, a2);
            b2 = wb.fma(xv, b2);
            c2 = wcv.fma(xv, c2);
            d2 = wd.fma(xv, d2);
            e2 = we.fma(xv, e2);
            xv = FloatVector.broadcast(F, x[i + 3 * xr + c * xs]);
            a3 = wa.fma(xv, a3);
            b3 = wb.fma(xv, b3);
            c3 = wcv.fma(xv, c3);
            d3 = wd.fma(xv, d3);
            e3 = we.fma(xv, e3);
        }
        a0.intoArray(out, o);
        b0.intoArray(out, o + L);
        c0.intoArray(out, o + 2 * L);
        d0.intoArray(out, o + 3 * L);
        e0.intoArray(out, o + 4 * L);
        a1.intoArray(out, o + os);
        b1.intoArray(out, o + os + L);
        c1.intoArray(out, o + os + 2 * L);
        d1.intoArray(out, o + os + 3 * L);
        e1.intoArray(out, o + os + 4 * L);
        a2.intoArray(out, o2);
        b2.intoArray(out, o2 + L);
        c2.intoArray(out, o2 + 2 * L);
        d2.intoArray(out, o2 + 3 * L);
        e2.intoArray(out, o2 + 4 * L);
        a3.intoArray(out, o3);
        b3.intoArray(out, o3 + L);
        c3.intoArray(out, o3 + 2 * L);
        d3.intoArray(out, o3 + 3 * L);
        e3.intoArray(out, o3 + 4 * L);
    }

    /** Two rows x two vectors; the same addressing as rows8x2. */
    private static void rows2x2(float[] out, int o, int os, float[] x, int i, int xr, int xs, float[] w, int wo,
                                int ws, float[] bias, int bo, boolean accumulate, int n) {
        int L = F.length();
        FloatVector a0 = start(out, o, bias, bo, accumulate), b0 = start(out, o + L, bias, bo + L, accumulate);
        FloatVector a1 = start(out, o + os, bias, bo, accumulate);
        FloatVector b1 = start(out, o + os + L, bias, bo + L, accumulate);
        for (int c = 0; c < n; c++) {
            FloatVector wa = FloatVector.fromArray(F, w, wo + c * ws);
            FloatVector wb = FloatVector.fromArray(F, w, wo + c * ws + L);
            FloatVector xv = FloatVector.broadcast(F, x[i + c * xs]);
            a0 = wa.fma(xv, a0);
            b0 = wb.fma(xv, b0);
            xv = FloatVector.broadcast(F, x[i + xr + c * xs]);
            a1 = wa.fma(xv, a1);
            b1 = wb.fma(xv, b1);
        }
        a0.intoArray(out, o);
        b0.intoArray(out, o + L);
        a1.intoArray(out, o + os);
        b1.intoArray(out, o + os + L);
    }

    /** rows (8, 2 or 1) x one vector; the same addressing as rows8x2. */
    private static void rowsNx1(float[] out, int o, int os, float[] x, int i, int xr, int xs, float[] w, int wo,
                                int ws, float[] bias, int bo, boolean accumulate, int rows, int n) {
        if (rows == 1) {
            FloatVector a0 = start(out, o, bias, bo, accumulate);
            for (int c = 0; c < n; c++) {
                a0 = FloatVector.fromArray(F, w, wo + c * ws).fma(FloatVector.broadcast(F, x[i + c * xs]), a0);
            }
            a0.intoArray(out, o);
            return;
        }
        if (rows == 2) {
            FloatVector a0 = start(out, o, bias, bo, accumulate), a1 = start(out, o + os, bias, bo, accumulate);
            for (int c = 0; c < n; c++) {
                FloatVector wa = FloatVector.fromArray(F, w, wo + c * ws);
                a0 = wa.fma(FloatVector.broadcast(F, x[i + c * xs]), a0);
                a1 = wa.fma(FloatVector.broadcast(F, x[i + xr + c * xs]), a1);
            }
            a0.intoArray(out, o);
            a1.intoArray(out, o + os);
            return;
        }
        FloatVector a0 = start(out, o, bias, bo, accumulate), a1 = start(out, o + os, bias, bo, accumulate);
        FloatVector a2 = start(out, o + 2 * os, bias, bo, accumulate);
        FloatVector a3 = start(out, o + 3 * os, bias, bo, accumulate);
        FloatVector a4 = start(out, o + 4 * os, bias, bo, accumulate);
        FloatVector a5 = start(out, o + 5 * os, bias, bo, accumulate);
        FloatVector a6 = start(out, o + 6 * os, bias, bo, accumulate);
        FloatVector a7 = start(out, o + 7 * os, bias, bo, accumulate);
        for (int c = 0; c < n; c++) {
            FloatVector wa = FloatVector.fromArray(F, w, wo + c * ws);
            a0 = wa.fma(FloatVector.broadcast(F, x[i + c * xs]), a0);
            a1 = wa.fma(FloatVector.broadcast(F, x[i + xr + c * xs]), a1);
            a2 = wa.fma(FloatVector.broadcast(F, x[i + 2 * xr + c * xs]), a2);
            a3 = wa.fma(FloatVector.broadcast(F, x[i + 3 * xr + c * xs]), a3);
            a4 = wa.fma(FloatVector.broadcast(F, x[i + 4 * xr + c * xs]), a4);
            a5 = wa.fma(FloatVector.broadcast(F, x[i + 5 * xr + c * xs]), a5);
            a6 = wa.fma(FloatVector.broadcast(F, x[i + 6 * xr + c * xs]), a6);
            a7 = wa.fma(FloatVector.broadcast(F, x[i + 7 * xr + c * xs]), a7);
        }
        a0.intoArray(out, o);
        a1.intoArray(out, o + os);
        a2.intoArray(out, o + 2 * os);
        a3.intoArray(out, o + 3 * os);
        a4.intoArray(out, o + 4 * os);
        a5.intoArray(out, o + 5 * os);
        a6.intoArray(out, o + 6 * os);
        a7.intoArray(out, o + 7 * os);
    }

    /** dw[C,OC] += inp^T @ dout: the tiles of the forward matmul, walking positions instead of input channels. */
    static void matmulBackwardWeight(float[] dw, int dwOff, float[] dout, int doutOff, float[] inp, int inpOff,
                                     int T, int C, int OC) {
        if (OC % F.length() != 0) {
            Kernels.matmulBackwardWeightScalar(dw, dwOff, dout, doutOff, inp, inpOff, T, C, OC);
            return;
        }
        tiles(dw, dwOff, inp, inpOff, 1, C, dout, doutOff, null, 0, true, C, T, OC);
    }

    /** See Kernels.matmulForwardStrided; OC a whole number of vectors. */
    static void matmulForwardStrided(float[] out, int outOff, float[] inp, int inpOff, int inpStride, float[] w,
                                     int wOff, float[] bias, int biasOff, int T, int C, int OC) {
        tiles(out, outOff, inp, inpOff, inpStride, 1, w, wOff, bias, biasOff, false, T, C, OC);
    }

    /** See Kernels.matmulBackwardWeightStrided; OC a whole number of vectors. */
    static void matmulBackwardWeightStrided(float[] dw, int dwOff, float[] dout, int doutOff, float[] inp, int inpOff,
                                            int inpStride, int T, int C, int OC) {
        tiles(dw, dwOff, inp, inpOff, 1, inpStride, dout, doutOff, null, 0, true, C, T, OC);
    }

    /** See Kernels.matmulBackwardInputStrided; C a whole number of vectors. */
    static void matmulBackwardInputStrided(float[] dinp, int dinpOff, float[] dout, int doutOff, int doutStride,
                                           float[] wT, int wTOff, int T, int C, int OC) {
        tiles(dinp, dinpOff, dout, doutOff, doutStride, 1, wT, wTOff, null, 0, true, T, OC, C);
    }

    /** dinp[T,C] += dout[T,OC] @ wT[OC,C], with w already transposed so lanes run over C. */
    static void matmulBackwardInput(float[] dinp, int dinpOff, float[] dout, int doutOff, float[] wT, int wTOff,
                                    int T, int C, int OC) {
        matmulAccumulate(dinp, dinpOff, dout, doutOff, wT, wTOff, T, OC, C);
    }

    /**
     * scores[h,i,j] = q[i,h,:] . k[j,h,:] / sqrt(Dh) for j <= i, -inf above the diagonal: per head, Q times K
     * transposed, lanes over j (see triangleDots).
     */
    static void attnScoresForward(float[] scores, int sOff, float[] q, int qOff, float[] k, int kOff,
                                  int T, int H, int Dh) {
        if (T < F.length()) {
            Kernels.attnScoresForwardScalar(scores, sOff, q, qOff, k, kOff, T, H, Dh);
            return;
        }
        float[] kT = scratch(Dh * T);
        float scale = (float) (1.0 / Math.sqrt(Dh));
        for (int h = 0; h < H; h++) {
            transposeHead(kT, k, kOff, h, T, H, Dh);
            triangleDots(scores, sOff + h * T * T, q, qOff + h * Dh, H * Dh, kT, T, Dh, scale, Float.NEGATIVE_INFINITY,
                    false);
        }
    }

    private static float[] scratch(int n) {
        float[] s = FLOAT_SCRATCH.get();
        if (s.length < n) {
            s = new float[n];
            FLOAT_SCRATCH.set(s);
        }
        return s;
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
     * run over c, eight rows at a time; a row's last vector may overlap the one before it, recomputing the same values.
     */
    private static void triangleDots(float[] out, int outOff, float[] a, int aOff, int aStride, float[] bT, int T,
                                     int Dh, float scale, float fill, boolean keysAfter) {
        int L = F.length();
        int r = 0;
        for (; r + 7 < T; r += 8) {
            int a0 = aOff + r * aStride;
            int first = keysAfter ? r / L * L : 0, end = keysAfter ? T : r + 8;
            for (int blk = first; blk < end; blk += L) {
                int c = Math.min(blk, T - L);
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
                int o = outOff + r * T + c;
                s0.mul(scale).intoArray(out, o);
                s1.mul(scale).intoArray(out, o + T);
                s2.mul(scale).intoArray(out, o + 2 * T);
                s3.mul(scale).intoArray(out, o + 3 * T);
                s4.mul(scale).intoArray(out, o + 4 * T);
                s5.mul(scale).intoArray(out, o + 5 * T);
                s6.mul(scale).intoArray(out, o + 6 * T);
                s7.mul(scale).intoArray(out, o + 7 * T);
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

    static int floatLanes() {
        return F.length();
    }

    // The attention kernels below need Dh to be a multiple of floatLanes(); Kernels checks before calling.

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
        if (T < F.length()) {
            Kernels.attnValuesBackwardScalar(dpattern, dpOff, dv, dvOff, dz, dzOff, pattern, pOff, v, vOff, T, H, Dh);
            return;
        }
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
    // so overlapped lanes are recomputed identically. Needs T >= floatLanes() and Dh a multiple of it.

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

    /** Kernels.softmax of doubles: the library's vector exp (4x the scalar one's speed), a scalar tail. */
    static void softmax(double[] probs, double[] logits, int n) {
        int L = DV.length(), bound = DV.loopBound(n);
        double max = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) {
            max = Math.max(max, logits[i]);
        }
        DoubleVector sumV = DoubleVector.zero(DV);
        for (int i = 0; i < bound; i += L) {
            DoubleVector e = DoubleVector.fromArray(DV, logits, i).sub(max).lanewise(VectorOperators.EXP);
            e.intoArray(probs, i);
            sumV = sumV.add(e);
        }
        double sum = sumV.reduceLanes(VectorOperators.ADD);
        for (int i = bound; i < n; i++) {
            probs[i] = Math.exp(logits[i] - max);
            sum += probs[i];
        }
        double inv = 1 / sum;
        for (int i = 0; i < n; i++) {
            probs[i] *= inv;
        }
    }

    /** pattern rows = softmax(score rows), exp in vector lanes; -inf scores give exactly 0. */
    static void softmaxForward(float[] pattern, int pOff, float[] scores, int sOff, int T, int H) {
        int L = F.length();
        if (T < L) {
            Kernels.softmaxForwardScalar(pattern, pOff, scores, sOff, T, H);
            return;
        }
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
                    exp(sv.sub(max), SOFTMAX_FLOOR).intoArray(pattern, p_r + j);
                } else {
                    FloatVector.zero(F).intoArray(pattern, p_r + j);
                }
            }
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

    /**
     * See Kernels.crossEntropyForwardBackward; exp in vector lanes over whole rows of Vp (a multiple of the lane
     * count), so the padding columns V..Vp-1 must hold -inf (the trainer pads b_U with it): their exp is exactly 0.
     *
     * <p>Done row by row, each row is one long chain of dependent steps (maximum, exps, sum across lanes, log,
     * divide) and the CPU sits waiting on it. So it runs in three passes over the rows, each a chain per row that
     * does not wait on the row before: the rows' maxima; their exps and per-lane sums; then the normalisation. The
     * loss takes one log of the product of the rows' sums rather than a log per row.
     */
    static double crossEntropyForwardBackward(float[] dlogits, float[] logits, int[] targets, int targetOff,
                                              float scale, int rows, int V, int Vp) {
        int L = F.length();
        float[] maxes = scratch(rows * (L + 1)); // each row's max, then each row's per-lane sums
        int sums = rows;
        for (int t = 0; t < rows; t++) {
            int row = t * Vp;
            FloatVector maxV = FloatVector.fromArray(F, logits, row);
            for (int i = L; i < Vp; i += L) {
                maxV = maxV.max(FloatVector.fromArray(F, logits, row + i));
            }
            maxes[t] = maxV.reduceLanes(VectorOperators.MAX);
        }
        for (int t = 0; t < rows; t++) {
            int row = t * Vp;
            float max = maxes[t];
            FloatVector sumV = FloatVector.zero(F);
            for (int i = 0; i < Vp; i += L) {
                FloatVector e = exp(FloatVector.fromArray(F, logits, row + i).sub(max), SOFTMAX_FLOOR);
                e.intoArray(dlogits, row + i);
                sumV = sumV.add(e);
            }
            sumV.intoArray(maxes, sums + t * L);
        }
        double loss = 0, sumProduct = 1;
        for (int t = 0; t < rows; t++) {
            int row = t * Vp;
            float sum = hsum(FloatVector.fromArray(F, maxes, sums + t * L));
            int target = targets[targetOff + t];
            loss -= logits[row + target] - maxes[t];
            // each sum is in [1, V] (the row's largest term is 1), so folding at 1e200 keeps the product finite
            sumProduct *= sum;
            if (sumProduct > 1e200) {
                loss += Math.log(sumProduct);
                sumProduct = 1;
            }
            float inv = scale / sum;
            for (int i = 0; i < Vp; i += L) {
                FloatVector.fromArray(F, dlogits, row + i).mul(inv).intoArray(dlogits, row + i);
            }
            dlogits[row + target] -= scale;
        }
        return loss + Math.log(sumProduct);
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

    static void accumulate(float[] dst, int dstOff, float[] src, int srcOff, int n) {
        int i = 0;
        for (int bound = F.loopBound(n); i < bound; i += F.length()) {
            FloatVector.fromArray(F, dst, dstOff + i).add(FloatVector.fromArray(F, src, srcOff + i))
                    .intoArray(dst, dstOff + i);
        }
        for (; i < n; i++) {
            dst[dstOff + i] += src[srcOff + i];
        }
    }

    /** See Kernels.gatherRowsAdd; n a whole number of vectors. */
    static void gatherRowsAdd(float[] out, int outOff, float[] byToken, int byTokenOff, int[] tokens, int tokOff,
                              float[] byPos, int byPosOff, int T, int n) {
        for (int t = 0; t < T; t++) {
            int o = outOff + t * n, a = byTokenOff + tokens[tokOff + t] * n, b = byPosOff + t * n;
            for (int i = 0; i < n; i += F.length()) {
                FloatVector.fromArray(F, byToken, a + i).add(FloatVector.fromArray(F, byPos, b + i))
                        .intoArray(out, o + i);
            }
        }
    }

    /** See Kernels.scatterRowsAdd; n a whole number of vectors. */
    static void scatterRowsAdd(float[] dByToken, int dByTokenOff, int[] tokens, int tokOff, float[] src, int srcOff,
                               int T, int n) {
        for (int t = 0; t < T; t++) {
            int d = dByTokenOff + tokens[tokOff + t] * n, s = srcOff + t * n;
            for (int i = 0; i < n; i += F.length()) {
                FloatVector.fromArray(F, dByToken, d + i).add(FloatVector.fromArray(F, src, s + i))
                        .intoArray(dByToken, d + i);
            }
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
            FloatVector.fromArray(F, dout, doutOff + i).blend(zero, inactive).intoArray(dinp, dinpOff + i);
        }
        for (; i < n; i++) {
            dinp[dinpOff + i] = inp[inpOff + i] > 0f ? dout[doutOff + i] : 0f;
        }
    }

    /** dbias[OC] += sum_t dout[t,:]; OC a whole number of vectors. */
    static void biasBackward(float[] dbias, int dbiasOff, float[] dout, int doutOff, int T, int OC) {
        // four running sums over interleaved rows: one would wait out the add latency on every row
        for (int o = 0; o < OC; o += F.length()) {
            FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
            int t = 0;
            for (; t + 3 < T; t += 4) {
                int at = doutOff + t * OC + o;
                a0 = a0.add(FloatVector.fromArray(F, dout, at));
                a1 = a1.add(FloatVector.fromArray(F, dout, at + OC));
                a2 = a2.add(FloatVector.fromArray(F, dout, at + 2 * OC));
                a3 = a3.add(FloatVector.fromArray(F, dout, at + 3 * OC));
            }
            for (; t < T; t++) {
                a0 = a0.add(FloatVector.fromArray(F, dout, doutOff + t * OC + o));
            }
            int at = dbiasOff + o;
            FloatVector.fromArray(F, dbias, at).add(a0.add(a1).add(a2.add(a3))).intoArray(dbias, at);
        }
    }
}

package dev.trilens.model.kernels;

import static dev.trilens.model.kernels.VectorMath.F;

import jdk.incubator.vector.FloatVector;

/** Matrix products in register tiles, lanes over the output columns. */
final class VectorMatmul {
    private VectorMatmul() {
    }

    /**
     * out[T,OC] = inp[T,C] @ w[C,OC] + bias, lanes over OC: in register tiles (see tiles) over the whole vectors of
     * each row, as every training width is; a width that is not (the eval's unembed, 75) ends with one more vector
     * that overlaps the one before it: the overlapped columns are computed twice, identically, which is cheaper than a
     * scalar tail (and other vector widths in the same loop would stop the JIT from compiling the vector code at all).
     */
    static void matmulForward(float[] out, int outOff, float[] inp, int inpOff, float[] w, int wOff,
                              float[] bias, int biasOff, int T, int C, int OC) {
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
        if (!accumulate && OC > L) {
            // the whole vectors in register tiles, then the last vector of each row, overlapping them: every column
            // is the same fma chain from the bias over c in order, so the overlap is rewritten with its own values
            // (the unembed's 75 columns on AVX2: 72 tiled, then columns 67..74)
            tiles(out, outOff, inp, inpOff, C, 1, w, wOff, bias, biasOff, false, T, C, OC, OC / L * L,
                    WIDE_REGISTERS);
            lastVector(out, outOff, inp, inpOff, C, 1, w, wOff, bias, biasOff, false, T, C, OC, OC - L);
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
    // weight vector it loads feeds eight FMAs. Outputs four or more vectors wide use 4 x 5 and 4 x 4 tiles (twenty
    // and sixteen), where each broadcast input feeds five or four FMAs instead of two. AVX-512 has 32 vector
    // registers, enough for any of these tiles and its operands.

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
        tiles(out, outOff, x, xOff, xr, xs, w, wOff, bias, biasOff, accumulate, rows, n, OC, OC, WIDE_REGISTERS);
    }

    /** out[T,OC] = inp[T,C] @ w[C,OC] + bias in the large tiles or the small ones: for the test that they agree. */
    static void matmulForwardTiled(float[] out, float[] inp, float[] w, float[] bias, int T, int C, int OC,
                                   boolean wide) {
        tiles(out, 0, inp, 0, C, 1, w, 0, bias, 0, false, T, C, OC, OC, wide);
    }

    /** {@link #tiles} over the first `width` (whole vectors) of the OC columns of each row; wide: the large tiles. */
    private static void tiles(float[] out, int outOff, float[] x, int xOff, int xr, int xs, float[] w, int wOff,
                              float[] bias, int biasOff, boolean accumulate, int rows, int n, int OC, int width,
                              boolean wide) {
        int L = F.length();
        int o = 0;
        // groups of five vectors (the unembed's 80 columns): each broadcast feeds five FMAs instead of two; then of
        // four where the rest would leave a single vector, whose tiles spend a broadcast load on every FMA (128
        // columns were 5 + 2 + 1 vectors, now 4 + 4)
        int vectors = width / L, fives = wide ? vectors / 5 : 0, fours = 0;
        int rest = vectors - 5 * fives;
        if (wide && rest == 4) {
            fours = 1;
        } else if (wide && fives > 0 && (rest == 1 || rest == 3)) {
            fives--;
            fours = rest == 1 ? 1 : 2; // 5 + 1 = 4 + 2, 5 + 3 = 4 + 4
        }
        for (int g = 0; g < fives; g++, o += 5 * L) {
            int r = 0;
            for (; r + 3 < rows; r += 4) {
                rows4x5(out, outOff + r * OC + o, OC, x, xOff + r * xr, xr, xs, w, wOff + o, OC, bias, biasOff + o,
                        accumulate, n);
            }
            singleRows(out, outOff, x, xOff, xr, xs, w, wOff, bias, biasOff, accumulate, r, rows, n, OC, o, 5);
        }
        for (int g = 0; g < fours; g++, o += 4 * L) {
            int r = 0;
            for (; r + 3 < rows; r += 4) {
                rows4x4(out, outOff + r * OC + o, OC, x, xOff + r * xr, xr, xs, w, wOff + o, OC, bias, biasOff + o,
                        accumulate, n);
            }
            singleRows(out, outOff, x, xOff, xr, xs, w, wOff, bias, biasOff, accumulate, r, rows, n, OC, o, 4);
        }
        for (; o + 2 * L <= width; o += 2 * L) {
            int r = 0;
            for (; wide && r + 7 < rows; r += 8) {
                rows8x2(out, outOff + r * OC + o, OC, x, xOff + r * xr, xr, xs, w, wOff + o, OC, bias, biasOff + o,
                        accumulate, n);
            }
            for (; !wide && r + 5 < rows; r += 6) {
                rows6x2(out, outOff + r * OC + o, OC, x, xOff + r * xr, xr, xs, w, wOff + o, OC, bias, biasOff + o,
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
        for (; o < width; o += L) {
            lastVector(out, outOff, x, xOff, xr, xs, w, wOff, bias, biasOff, accumulate, rows, n, OC, o);
        }
    }

    /** Rows from..rows-1 of a group of `vectors` vectors from column o, one row and one vector at a time. */
    private static void singleRows(float[] out, int outOff, float[] x, int xOff, int xr, int xs, float[] w, int wOff,
                                   float[] bias, int biasOff, boolean accumulate, int from, int rows, int n, int OC,
                                   int o, int vectors) {
        int L = F.length();
        for (int r = from; r < rows; r++) {
            for (int v = o; v < o + vectors * L; v += L) {
                rowsNx1(out, outOff + r * OC + v, OC, x, xOff + r * xr, xr, xs, w, wOff + v, OC, bias, biasOff + v,
                        accumulate, 1, n);
            }
        }
    }

    /** The one vector of columns o..o+L-1 of every row: 8 rows at a time, then 2, then 1. */
    private static void lastVector(float[] out, int outOff, float[] x, int xOff, int xr, int xs, float[] w, int wOff,
                                   float[] bias, int biasOff, boolean accumulate, int rows, int n, int OC, int o) {
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

    /**
     * Whether the register file holds the large tiles: 8 x 2 needs 16 accumulators, 2 weight vectors and a
     * broadcast, 4 x 5 twenty accumulators. AVX-512 (16 float lanes) has 32 vector registers; AVX2 (8 lanes) has 16,
     * so there the JIT would spill accumulators to the stack on every step of the loop: 6 x 2 tiles instead (12
     * accumulators + 3 = 15 registers). Every output is the same fma chain over k in either tiling, so the results
     * do not change. It is the machine's widest vectors that tell, not the width the kernels run at: an AVX-512
     * machine running 8-float vectors (a d_head of 8, see VectorWidth) still has its 32 registers, and the large
     * tiles made such a training step faster.
     */
    static final boolean WIDE_REGISTERS = Boolean.getBoolean("trilens.wideTiles")
            || FloatVector.SPECIES_PREFERRED.length() >= 16;

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

    /** Six rows x two vectors; the same addressing as rows8x2. */
    private static void rows6x2(float[] out, int o, int os, float[] x, int i, int xr, int xs, float[] w, int wo,
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

    /** Four rows x four vectors; the same addressing as rows8x2. */
    private static void rows4x4(float[] out, int o, int os, float[] x, int i, int xr, int xs, float[] w, int wo,
                                int ws, float[] bias, int bo, boolean accumulate, int n) {
        int L = F.length();
        int o1 = o + os, o2 = o + 2 * os, o3 = o + 3 * os;
        FloatVector a0 = start(out, o, bias, bo, accumulate), b0 = start(out, o + L, bias, bo + L, accumulate);
        FloatVector c0 = start(out, o + 2 * L, bias, bo + 2 * L, accumulate);
        FloatVector d0 = start(out, o + 3 * L, bias, bo + 3 * L, accumulate);
        FloatVector a1 = start(out, o1, bias, bo, accumulate), b1 = start(out, o1 + L, bias, bo + L, accumulate);
        FloatVector c1 = start(out, o1 + 2 * L, bias, bo + 2 * L, accumulate);
        FloatVector d1 = start(out, o1 + 3 * L, bias, bo + 3 * L, accumulate);
        FloatVector a2 = start(out, o2, bias, bo, accumulate), b2 = start(out, o2 + L, bias, bo + L, accumulate);
        FloatVector c2 = start(out, o2 + 2 * L, bias, bo + 2 * L, accumulate);
        FloatVector d2 = start(out, o2 + 3 * L, bias, bo + 3 * L, accumulate);
        FloatVector a3 = start(out, o3, bias, bo, accumulate), b3 = start(out, o3 + L, bias, bo + L, accumulate);
        FloatVector c3 = start(out, o3 + 2 * L, bias, bo + 2 * L, accumulate);
        FloatVector d3 = start(out, o3 + 3 * L, bias, bo + 3 * L, accumulate);
        for (int c = 0; c < n; c++) {
            int wc = wo + c * ws;
            FloatVector wa = FloatVector.fromArray(F, w, wc), wb = FloatVector.fromArray(F, w, wc + L);
            FloatVector wcv = FloatVector.fromArray(F, w, wc + 2 * L), wd = FloatVector.fromArray(F, w, wc + 3 * L);
            FloatVector xv = FloatVector.broadcast(F, x[i + c * xs]);
            a0 = wa.fma(xv, a0);
            b0 = wb.fma(xv, b0);
            c0 = wcv.fma(xv, c0);
            d0 = wd.fma(xv, d0);
            xv = FloatVector.broadcast(F, x[i + xr + c * xs]);
            a1 = wa.fma(xv, a1);
            b1 = wb.fma(xv, b1);
            c1 = wcv.fma(xv, c1);
            d1 = wd.fma(xv, d1);
            xv = FloatVector.broadcast(F, x[i + 2 * xr + c * xs]);
            a2 = wa.fma(xv, a2);
            b2 = wb.fma(xv, b2);
            c2 = wcv.fma(xv, c2);
            d2 = wd.fma(xv, d2);
            xv = FloatVector.broadcast(F, x[i + 3 * xr + c * xs]);
            a3 = wa.fma(xv, a3);
            b3 = wb.fma(xv, b3);
            c3 = wcv.fma(xv, c3);
            d3 = wd.fma(xv, d3);
        }
        a0.intoArray(out, o);
        b0.intoArray(out, o + L);
        c0.intoArray(out, o + 2 * L);
        d0.intoArray(out, o + 3 * L);
        a1.intoArray(out, o1);
        b1.intoArray(out, o1 + L);
        c1.intoArray(out, o1 + 2 * L);
        d1.intoArray(out, o1 + 3 * L);
        a2.intoArray(out, o2);
        b2.intoArray(out, o2 + L);
        c2.intoArray(out, o2 + 2 * L);
        d2.intoArray(out, o2 + 3 * L);
        a3.intoArray(out, o3);
        b3.intoArray(out, o3 + L);
        c3.intoArray(out, o3 + 2 * L);
        d3.intoArray(out, o3 + 3 * L);
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

    /**
     * rows (8, 2 or 1) x one vector; the same addressing as rows8x2. Each row count is a method of its own: as
     * branches of one method, the two-row one (the tail vector's last two rows) was compiled with its Vector API calls
     * left as calls, allocating a vector object per operation for the whole run (JFR: ~300 MB/s in a warm training
     * step, at VectorMatmul.rowsNx1 from lastVector).
     */
    private static void rowsNx1(float[] out, int o, int os, float[] x, int i, int xr, int xs, float[] w, int wo,
                                int ws, float[] bias, int bo, boolean accumulate, int rows, int n) {
        if (rows == 1) {
            rows1x1(out, o, x, i, xs, w, wo, ws, bias, bo, accumulate, n);
        } else if (rows == 2) {
            rows2x1(out, o, os, x, i, xr, xs, w, wo, ws, bias, bo, accumulate, n);
        } else {
            rows8x1(out, o, os, x, i, xr, xs, w, wo, ws, bias, bo, accumulate, n);
        }
    }

    private static void rows1x1(float[] out, int o, float[] x, int i, int xs, float[] w, int wo, int ws, float[] bias,
                                int bo, boolean accumulate, int n) {
        FloatVector a0 = start(out, o, bias, bo, accumulate);
        for (int c = 0; c < n; c++) {
            a0 = FloatVector.fromArray(F, w, wo + c * ws).fma(FloatVector.broadcast(F, x[i + c * xs]), a0);
        }
        a0.intoArray(out, o);
    }

    private static void rows2x1(float[] out, int o, int os, float[] x, int i, int xr, int xs, float[] w, int wo,
                                int ws, float[] bias, int bo, boolean accumulate, int n) {
        FloatVector a0 = start(out, o, bias, bo, accumulate), a1 = start(out, o + os, bias, bo, accumulate);
        for (int c = 0; c < n; c++) {
            FloatVector wa = FloatVector.fromArray(F, w, wo + c * ws);
            a0 = wa.fma(FloatVector.broadcast(F, x[i + c * xs]), a0);
            a1 = wa.fma(FloatVector.broadcast(F, x[i + xr + c * xs]), a1);
        }
        a0.intoArray(out, o);
        a1.intoArray(out, o + os);
    }

    private static void rows8x1(float[] out, int o, int os, float[] x, int i, int xr, int xs, float[] w, int wo,
                                int ws, float[] bias, int bo, boolean accumulate, int n) {
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

    /**
     * Whether three products of one input, each OC wide, run together ({@link #matmul3}): where OC is a single vector
     * (Q, K and V of a d_head 16 head on AVX-512), alone each would run in 8 x 1 tiles, a broadcast load per FMA.
     */
    static boolean together(int OC) {
        return OC == F.length() && WIDE_REGISTERS;
    }

    /**
     * Three products of the same x, each one vector (L floats) wide: outA[oA + r*L] (+)= sum over k < n of
     * x[i + r*xr + k*xs] * wA[woA + k*L], and B and C likewise, for r < rows: in tiles of 6 rows x the three, so each
     * broadcast input feeds three FMAs; the last rows one product at a time. Every output is the fma chain the single
     * products compute.
     */
    static void matmul3(float[] outA, int oA, float[] outB, int oB, float[] outC, int oC, float[] x, int i, int xr,
                        int xs, float[] wA, int woA, float[] wB, int woB, float[] wC, int woC, float[] bias, int bA,
                        int bB, int bC, boolean accumulate, int rows, int n) {
        int L = F.length(), r = 0;
        for (; r + 5 < rows; r += 6) {
            rows6x3(outA, oA + r * L, outB, oB + r * L, outC, oC + r * L, L, x, i + r * xr, xr, xs, wA, woA, wB, woB,
                    wC, woC, L, bias, bA, bB, bC, accumulate, n);
        }
        if (r < rows) {
            int rest = rows - r, xi = i + r * xr;
            tiles(outA, oA + r * L, x, xi, xr, xs, wA, woA, bias, bA, accumulate, rest, n, L, L, true);
            tiles(outB, oB + r * L, x, xi, xr, xs, wB, woB, bias, bB, accumulate, rest, n, L, L, true);
            tiles(outC, oC + r * L, x, xi, xr, xs, wC, woC, bias, bC, accumulate, rest, n, L, L, true);
        }
    }

    /**
     * Six rows x one vector of three products; the addressing of {@link #matmul3}. Eighteen accumulators: eight rows
     * (twenty-four) made a method too large for C2 to inline every Vector API call, and the rest then boxed a vector
     * object per operation.
     */
    private static void rows6x3(float[] outA, int oA, float[] outB, int oB, float[] outC, int oC, int os, float[] x,
                                int i, int xr, int xs, float[] wA, int woA, float[] wB, int woB, float[] wC, int woC,
                                int ws, float[] bias, int bA, int bB, int bC, boolean accumulate, int n) {
        FloatVector a0 = start(outA, oA, bias, bA, accumulate);
        FloatVector b0 = start(outB, oB, bias, bB, accumulate);
        FloatVector c0 = start(outC, oC, bias, bC, accumulate);
        FloatVector a1 = start(outA, oA + os, bias, bA, accumulate);
        FloatVector b1 = start(outB, oB + os, bias, bB, accumulate);
        FloatVector c1 = start(outC, oC + os, bias, bC, accumulate);
        FloatVector a2 = start(outA, oA + 2 * os, bias, bA, accumulate);
        FloatVector b2 = start(outB, oB + 2 * os, bias, bB, accumulate);
        FloatVector c2 = start(outC, oC + 2 * os, bias, bC, accumulate);
        FloatVector a3 = start(outA, oA + 3 * os, bias, bA, accumulate);
        FloatVector b3 = start(outB, oB + 3 * os, bias, bB, accumulate);
        FloatVector c3 = start(outC, oC + 3 * os, bias, bC, accumulate);
        FloatVector a4 = start(outA, oA + 4 * os, bias, bA, accumulate);
        FloatVector b4 = start(outB, oB + 4 * os, bias, bB, accumulate);
        FloatVector c4 = start(outC, oC + 4 * os, bias, bC, accumulate);
        FloatVector a5 = start(outA, oA + 5 * os, bias, bA, accumulate);
        FloatVector b5 = start(outB, oB + 5 * os, bias, bB, accumulate);
        FloatVector c5 = start(outC, oC + 5 * os, bias, bC, accumulate);
        for (int k = 0; k < n; k++) {
            FloatVector wa = FloatVector.fromArray(F, wA, woA + k * ws);
            FloatVector wb = FloatVector.fromArray(F, wB, woB + k * ws);
            FloatVector wc = FloatVector.fromArray(F, wC, woC + k * ws);
            FloatVector xv = FloatVector.broadcast(F, x[i + k * xs]);
            a0 = wa.fma(xv, a0);
            b0 = wb.fma(xv, b0);
            c0 = wc.fma(xv, c0);
            xv = FloatVector.broadcast(F, x[i + xr + k * xs]);
            a1 = wa.fma(xv, a1);
            b1 = wb.fma(xv, b1);
            c1 = wc.fma(xv, c1);
            xv = FloatVector.broadcast(F, x[i + 2 * xr + k * xs]);
            a2 = wa.fma(xv, a2);
            b2 = wb.fma(xv, b2);
            c2 = wc.fma(xv, c2);
            xv = FloatVector.broadcast(F, x[i + 3 * xr + k * xs]);
            a3 = wa.fma(xv, a3);
            b3 = wb.fma(xv, b3);
            c3 = wc.fma(xv, c3);
            xv = FloatVector.broadcast(F, x[i + 4 * xr + k * xs]);
            a4 = wa.fma(xv, a4);
            b4 = wb.fma(xv, b4);
            c4 = wc.fma(xv, c4);
            xv = FloatVector.broadcast(F, x[i + 5 * xr + k * xs]);
            a5 = wa.fma(xv, a5);
            b5 = wb.fma(xv, b5);
            c5 = wc.fma(xv, c5);
        }
        a0.intoArray(outA, oA);
        b0.intoArray(outB, oB);
        c0.intoArray(outC, oC);
        a1.intoArray(outA, oA + os);
        b1.intoArray(outB, oB + os);
        c1.intoArray(outC, oC + os);
        a2.intoArray(outA, oA + 2 * os);
        b2.intoArray(outB, oB + 2 * os);
        c2.intoArray(outC, oC + 2 * os);
        a3.intoArray(outA, oA + 3 * os);
        b3.intoArray(outB, oB + 3 * os);
        c3.intoArray(outC, oC + 3 * os);
        a4.intoArray(outA, oA + 4 * os);
        b4.intoArray(outB, oB + 4 * os);
        c4.intoArray(outC, oC + 4 * os);
        a5.intoArray(outA, oA + 5 * os);
        b5.intoArray(outB, oB + 5 * os);
        c5.intoArray(outC, oC + 5 * os);
    }

    /** dw[C,OC] += inp^T @ dout: the tiles of the forward matmul, walking positions instead of input channels. */
    static void matmulBackwardWeight(float[] dw, int dwOff, float[] dout, int doutOff, float[] inp, int inpOff,
                                     int T, int C, int OC) {
        tiles(dw, dwOff, inp, inpOff, 1, C, dout, doutOff, null, 0, true, C, T, OC);
    }

    /** See TensorOps.matmulForwardStrided; OC a whole number of vectors. */
    static void matmulForwardStrided(float[] out, int outOff, float[] inp, int inpOff, int inpStride, float[] w,
                                     int wOff, float[] bias, int biasOff, int T, int C, int OC) {
        tiles(out, outOff, inp, inpOff, inpStride, 1, w, wOff, bias, biasOff, false, T, C, OC);
    }

    /** See TensorOps.matmulBackwardWeightStrided; OC a whole number of vectors. */
    static void matmulBackwardWeightStrided(float[] dw, int dwOff, float[] dout, int doutOff, float[] inp, int inpOff,
                                            int inpStride, int T, int C, int OC) {
        tiles(dw, dwOff, inp, inpOff, 1, inpStride, dout, doutOff, null, 0, true, C, T, OC);
    }

    /** See TensorOps.matmulBackwardInputStrided; C a whole number of vectors. */
    static void matmulBackwardInputStrided(float[] dinp, int dinpOff, float[] dout, int doutOff, int doutStride,
                                           float[] wT, int wTOff, int T, int C, int OC) {
        tiles(dinp, dinpOff, dout, doutOff, doutStride, 1, wT, wTOff, null, 0, true, T, OC, C);
    }

    /** dinp[T,C] += dout[T,OC] @ wT[OC,C], with w already transposed so lanes run over C. */
    static void matmulBackwardInput(float[] dinp, int dinpOff, float[] dout, int doutOff, float[] wT, int wTOff,
                                    int T, int C, int OC) {
        matmulAccumulate(dinp, dinpOff, dout, doutOff, wT, wTOff, T, OC, C);
    }
}

package dev.trilens.model.kernels;

import static dev.trilens.model.kernels.VectorMath.F;
import static dev.trilens.model.kernels.VectorMath.scratch;
import static dev.trilens.model.kernels.VectorMath.exp;
import static dev.trilens.model.kernels.VectorMath.hsum;
import static dev.trilens.model.kernels.VectorMath.layerNormRowApply;
import static dev.trilens.model.kernels.VectorMath.layerNormRowScale;
import static dev.trilens.model.kernels.VectorMath.sum;
import static dev.trilens.model.kernels.VectorMath.SOFTMAX_FLOOR;

import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * The Vector API kernels: {@link VectorMatmul}'s tiles, {@link VectorAttention}, and the cross-entropy and
 * elementwise kernels here. For a shape a kernel has no vector code for (a d_head that is not a whole number of
 * vectors, fewer positions than lanes), it runs the reference it inherits from {@link ScalarOps}.
 */
public final class VectorOps extends ScalarOps {

    @Override
    public int lanes() {
        return F.length();
    }

    @Override
    public boolean prefersKeyMajor(int T, int Dh) {
        return T >= F.length() && Dh % F.length() == 0;
    }

    // ---------------------------------------------------------------------------------------------------------
    // matmul (VectorMatmul)

    @Override
    public void matmulForward(float[] out, int outOff, float[] inp, int inpOff, float[] w, int wOff, float[] bias,
                              int biasOff, int T, int C, int OC) {
        if (OC < F.length()) {
            super.matmulForward(out, outOff, inp, inpOff, w, wOff, bias, biasOff, T, C, OC);
            return;
        }
        VectorMatmul.matmulForward(out, outOff, inp, inpOff, w, wOff, bias, biasOff, T, C, OC);
    }

    @Override
    public void matmulForwardStrided(float[] out, int outOff, float[] inp, int inpOff, int inpStride, float[] w,
                                     int wOff, float[] bias, int biasOff, int T, int C, int OC) {
        if (OC % F.length() != 0) {
            super.matmulForwardStrided(out, outOff, inp, inpOff, inpStride, w, wOff, bias, biasOff, T, C, OC);
            return;
        }
        VectorMatmul.matmulForwardStrided(out, outOff, inp, inpOff, inpStride, w, wOff, bias, biasOff, T, C, OC);
    }

    @Override
    public void matmulBackwardWeight(float[] dw, int dwOff, float[] dout, int doutOff, float[] inp, int inpOff,
                                     int T, int C, int OC) {
        if (OC % F.length() != 0) {
            super.matmulBackwardWeight(dw, dwOff, dout, doutOff, inp, inpOff, T, C, OC);
            return;
        }
        VectorMatmul.matmulBackwardWeight(dw, dwOff, dout, doutOff, inp, inpOff, T, C, OC);
    }

    @Override
    public void matmulBackwardWeightStrided(float[] dw, int dwOff, float[] dout, int doutOff, float[] inp, int inpOff,
                                            int inpStride, int T, int C, int OC) {
        if (OC % F.length() != 0) {
            super.matmulBackwardWeightStrided(dw, dwOff, dout, doutOff, inp, inpOff, inpStride, T, C, OC);
            return;
        }
        VectorMatmul.matmulBackwardWeightStrided(dw, dwOff, dout, doutOff, inp, inpOff, inpStride, T, C, OC);
    }

    @Override
    public void matmulForward3(float[] outQ, int oQ, float[] outK, int oK, float[] outV, int oV, float[] inp,
                               int inpOff, float[] w, int wQ, int wK, int wV, float[] bias, int bQ, int bK, int bV,
                               int T, int C, int OC) {
        if (!VectorMatmul.together(OC)) {
            super.matmulForward3(outQ, oQ, outK, oK, outV, oV, inp, inpOff, w, wQ, wK, wV, bias, bQ, bK, bV, T, C, OC);
            return;
        }
        VectorMatmul.matmul3(outQ, oQ, outK, oK, outV, oV, inp, inpOff, C, 1, w, wQ, w, wK, w, wV, bias, bQ, bK, bV,
                false, T, C);
    }

    @Override
    public void matmulBackwardWeight3(float[] dw, int dwQ, int dwK, int dwV, float[] dq, int dqOff, float[] dk,
                                      int dkOff, float[] dv, int dvOff, float[] inp, int inpOff, int T, int C,
                                      int OC) {
        if (!VectorMatmul.together(OC)) {
            super.matmulBackwardWeight3(dw, dwQ, dwK, dwV, dq, dqOff, dk, dkOff, dv, dvOff, inp, inpOff, T, C, OC);
            return;
        }
        VectorMatmul.matmul3(dw, dwQ, dw, dwK, dw, dwV, inp, inpOff, 1, C, dq, dqOff, dk, dkOff, dv, dvOff, null, 0, 0,
                0, true, C, T);
    }

    /** Any C: lanes over C, whole vectors in tiles, otherwise fused multiply-adds one column at a time. */
    @Override
    public void matmulBackwardInput(float[] dinp, int dinpOff, float[] dout, int doutOff, float[] wT, int wTOff,
                                    int T, int C, int OC) {
        VectorMatmul.matmulBackwardInput(dinp, dinpOff, dout, doutOff, wT, wTOff, T, C, OC);
    }

    @Override
    public void matmulBackwardInputStrided(float[] dinp, int dinpOff, float[] dout, int doutOff, int doutStride,
                                           float[] wT, int wTOff, int T, int C, int OC) {
        if (C % F.length() != 0) {
            super.matmulBackwardInputStrided(dinp, dinpOff, dout, doutOff, doutStride, wT, wTOff, T, C, OC);
            return;
        }
        VectorMatmul.matmulBackwardInputStrided(dinp, dinpOff, dout, doutOff, doutStride, wT, wTOff, T, C, OC);
    }

    // ---------------------------------------------------------------------------------------------------------
    // attention (VectorAttention): heads of whole vectors, and for the triangles at least a vector of positions

    private static boolean wholeVectors(int Dh) {
        return Dh % F.length() == 0;
    }

    @Override
    public void attnScoresForward(float[] scores, int sOff, float[] q, int qOff, float[] k, int kOff,
                                  int T, int H, int Dh) {
        if (T < F.length()) {
            super.attnScoresForward(scores, sOff, q, qOff, k, kOff, T, H, Dh);
            return;
        }
        VectorAttention.attnScoresForward(scores, sOff, q, qOff, k, kOff, T, H, Dh);
    }

    @Override
    public void attnScoresBackward(float[] dq, int dqOff, float[] dk, int dkOff, float[] dscores, int dsOff,
                                   float[] q, int qOff, float[] k, int kOff, int T, int H, int Dh) {
        if (!wholeVectors(Dh)) {
            super.attnScoresBackward(dq, dqOff, dk, dkOff, dscores, dsOff, q, qOff, k, kOff, T, H, Dh);
            return;
        }
        VectorAttention.attnScoresBackward(dq, dqOff, dk, dkOff, dscores, dsOff, q, qOff, k, kOff, T, H, Dh);
    }

    @Override
    public void softmaxForward(float[] pattern, int pOff, float[] scores, int sOff, int T, int H) {
        if (T < F.length()) {
            super.softmaxForward(pattern, pOff, scores, sOff, T, H);
            return;
        }
        VectorAttention.softmaxForward(pattern, pOff, scores, sOff, T, H);
    }

    /** One row of {@link VectorAttention#softmaxForward}: here so that the launcher's dontinline covers it. */
    static void softmaxRowExp(float[] pattern, int pRow, float[] scores, int sRow, int T) {
        VectorAttention.softmaxRowExp(pattern, pRow, scores, sRow, T);
    }

    /** One row of {@link VectorAttention#softmaxForward}: here so that the launcher's dontinline covers it. */
    static void softmaxRowScale(float[] pattern, int pRow, int T) {
        VectorAttention.softmaxRowScale(pattern, pRow, T);
    }

    @Override
    public void softmaxBackward(float[] dscores, int dsOff, float[] dpattern, int dpOff, float[] pattern, int pOff,
                                int T, int H) {
        VectorAttention.softmaxBackward(dscores, dsOff, dpattern, dpOff, pattern, pOff, T, H);
    }

    @Override
    public void attnValuesForward(float[] z, int zOff, float[] pattern, int pOff, float[] v, int vOff,
                                  int T, int H, int Dh) {
        if (!wholeVectors(Dh)) {
            super.attnValuesForward(z, zOff, pattern, pOff, v, vOff, T, H, Dh);
            return;
        }
        VectorAttention.attnValuesForward(z, zOff, pattern, pOff, v, vOff, T, H, Dh);
    }

    @Override
    public void attnValuesBackward(float[] dpattern, int dpOff, float[] dv, int dvOff, float[] dz, int dzOff,
                                   float[] pattern, int pOff, float[] v, int vOff, int T, int H, int Dh) {
        if (!wholeVectors(Dh) || T < F.length()) {
            super.attnValuesBackward(dpattern, dpOff, dv, dvOff, dz, dzOff, pattern, pOff, v, vOff, T, H, Dh);
            return;
        }
        VectorAttention.attnValuesBackward(dpattern, dpOff, dv, dvOff, dz, dzOff, pattern, pOff, v, vOff, T, H, Dh);
    }

    @Override
    public void attnScoresForwardKeyMajor(float[] scoresT, int sOff, float[] q, int qOff, float[] k, int kOff,
                                          int T, int H, int Dh) {
        if (!prefersKeyMajor(T, Dh)) {
            super.attnScoresForwardKeyMajor(scoresT, sOff, q, qOff, k, kOff, T, H, Dh);
            return;
        }
        VectorAttention.attnScoresForwardKeyMajor(scoresT, sOff, q, qOff, k, kOff, T, H, Dh);
    }

    @Override
    public void softmaxForwardKeyMajor(float[] patternT, int pOff, float[] scoresT, int sOff, int T, int H) {
        if (T < F.length()) {
            super.softmaxForwardKeyMajor(patternT, pOff, scoresT, sOff, T, H);
            return;
        }
        VectorAttention.softmaxForwardKeyMajor(patternT, pOff, scoresT, sOff, T, H);
    }

    @Override
    public void attnValuesForwardKeyMajor(float[] z, int zOff, float[] patternT, int pOff, float[] v, int vOff,
                                          int T, int H, int Dh) {
        if (!wholeVectors(Dh)) {
            super.attnValuesForwardKeyMajor(z, zOff, patternT, pOff, v, vOff, T, H, Dh);
            return;
        }
        VectorAttention.attnValuesForwardKeyMajor(z, zOff, patternT, pOff, v, vOff, T, H, Dh);
    }

    @Override
    public void attnValuesBackwardKeyMajor(float[] dpatternT, int dpOff, float[] dv, int dvOff, float[] dz, int dzOff,
                                           float[] patternT, int pOff, float[] v, int vOff, int T, int H, int Dh) {
        if (!prefersKeyMajor(T, Dh)) {
            super.attnValuesBackwardKeyMajor(dpatternT, dpOff, dv, dvOff, dz, dzOff, patternT, pOff, v, vOff, T, H,
                    Dh);
            return;
        }
        VectorAttention.attnValuesBackwardKeyMajor(dpatternT, dpOff, dv, dvOff, dz, dzOff, patternT, pOff, v, vOff, T,
                H, Dh);
    }

    @Override
    public void softmaxBackwardKeyMajor(float[] dscoresT, int dsOff, float[] dpatternT, int dpOff, float[] patternT,
                                        int pOff, int T, int H) {
        if (T < F.length()) {
            super.softmaxBackwardKeyMajor(dscoresT, dsOff, dpatternT, dpOff, patternT, pOff, T, H);
            return;
        }
        VectorAttention.softmaxBackwardKeyMajor(dscoresT, dsOff, dpatternT, dpOff, patternT, pOff, T, H);
    }

    @Override
    public void attnScoresBackwardKeyMajor(float[] dq, int dqOff, float[] dk, int dkOff, float[] dscoresT, int dsOff,
                                           float[] q, int qOff, float[] k, int kOff, int T, int H, int Dh) {
        if (!wholeVectors(Dh)) {
            super.attnScoresBackwardKeyMajor(dq, dqOff, dk, dkOff, dscoresT, dsOff, q, qOff, k, kOff, T, H, Dh);
            return;
        }
        VectorAttention.attnScoresBackwardKeyMajor(dq, dqOff, dk, dkOff, dscoresT, dsOff, q, qOff, k, kOff, T, H, Dh);
    }

    // ---------------------------------------------------------------------------------------------------------
    // layernorm: lanes over d_model, sums across lanes in hsum's fixed order, a scalar tail

    @Override
    public void layerNormScale(float[] scale, int scaleOff, float[] inp, int inpOff, int T, int D) {
        for (int t = 0; t < T; t++) {
            int x_t = inpOff + t * D;
            scale[scaleOff + t] = layerNormRowScale(inp, x_t, sum(inp, x_t, D) / D, D);
        }
    }

    @Override
    public void layerNormApply(float[] out, int outOff, float[] scale, int scaleOff, float[] inp, int inpOff,
                               float[] w, int wOff, float[] b, int bOff, int T, int D) {
        for (int t = 0; t < T; t++) {
            int x_t = inpOff + t * D;
            layerNormRowApply(out, outOff + t * D, inp, x_t, sum(inp, x_t, D) / D, 1f / scale[scaleOff + t], w, wOff,
                    b, bOff, D);
        }
    }

    /** Both halves a row at a time, its mean summed once: the same numbers as layerNormScale then layerNormApply. */
    @Override
    public void layerNormForward(float[] out, int outOff, float[] scale, int scaleOff, float[] inp, int inpOff,
                                 float[] w, int wOff, float[] b, int bOff, int T, int D) {
        for (int t = 0; t < T; t++) {
            int x_t = inpOff + t * D;
            float mean = sum(inp, x_t, D) / D;
            float s = layerNormRowScale(inp, x_t, mean, D);
            scale[scaleOff + t] = s;
            layerNormRowApply(out, outOff + t * D, inp, x_t, mean, 1f / s, w, wOff, b, bOff, D);
        }
    }

    @Override
    public void layerNormBackward(float[] dinp, int dinpOff, float[] dw, int dwOff, float[] db, int dbOff,
                                  float[] dout, int doutOff, float[] inp, int inpOff, float[] scale, int scaleOff,
                                  float[] w, int wOff, int T, int D) {
        int L = F.length();
        for (int t = 0; t < T; t++) {
            int x_t = inpOff + t * D, d_t = doutOff + t * D, di_t = dinpOff + t * D;
            float mean = sum(inp, x_t, D) / D;
            float rstd = 1f / scale[scaleOff + t];
            // dnorm = w * dout and xhat = (x - mean) * rstd; their means over the row
            FloatVector sumDnorm = FloatVector.zero(F), sumDnormXhat = FloatVector.zero(F);
            int i = 0;
            for (; i + L <= D; i += L) {
                FloatVector xhat = FloatVector.fromArray(F, inp, x_t + i).sub(mean).mul(rstd);
                FloatVector dnorm = FloatVector.fromArray(F, w, wOff + i).mul(FloatVector.fromArray(F, dout, d_t + i));
                sumDnorm = sumDnorm.add(dnorm);
                sumDnormXhat = dnorm.fma(xhat, sumDnormXhat);
            }
            float dnormMean = hsum(sumDnorm), dnormNormMean = hsum(sumDnormXhat);
            for (int j = i; j < D; j++) {
                float xhat = (inp[x_t + j] - mean) * rstd;
                float dnorm = w[wOff + j] * dout[d_t + j];
                dnormMean += dnorm;
                dnormNormMean += dnorm * xhat;
            }
            dnormMean /= D;
            dnormNormMean /= D;
            i = 0;
            for (; i + L <= D; i += L) {
                FloatVector xhat = FloatVector.fromArray(F, inp, x_t + i).sub(mean).mul(rstd);
                FloatVector g = FloatVector.fromArray(F, dout, d_t + i);
                FloatVector dnorm = FloatVector.fromArray(F, w, wOff + i).mul(g);
                FloatVector.fromArray(F, db, dbOff + i).add(g).intoArray(db, dbOff + i);
                xhat.fma(g, FloatVector.fromArray(F, dw, dwOff + i)).intoArray(dw, dwOff + i);
                FloatVector dx = dnorm.sub(dnormMean).sub(xhat.mul(dnormNormMean)).mul(rstd);
                FloatVector.fromArray(F, dinp, di_t + i).add(dx).intoArray(dinp, di_t + i);
            }
            for (; i < D; i++) {
                float xhat = (inp[x_t + i] - mean) * rstd;
                float dnorm = w[wOff + i] * dout[d_t + i];
                db[dbOff + i] += dout[d_t + i];
                dw[dwOff + i] += xhat * dout[d_t + i];
                dinp[di_t + i] += (dnorm - dnormMean - xhat * dnormNormMean) * rstd;
            }
        }
    }

    // ---------------------------------------------------------------------------------------------------------
    // cross-entropy and elementwise: whole vectors, then a scalar tail

    /**
     * Vp a whole number of vectors; exp in vector lanes over whole rows of Vp (a multiple of the lane
     * count), so the padding columns V..Vp-1 must hold -inf (the trainer pads b_U with it): their exp is exactly 0.
     *
     * <p>Done row by row, each row is one long chain of dependent steps (maximum, exps, sum across lanes, log,
     * divide) and the CPU sits waiting on it. So it runs in three passes over the rows, each a chain per row that
     * does not wait on the row before: the rows' maxima; their exps and per-lane sums; then the normalisation. The
     * loss takes one log of the product of the rows' sums rather than a log per row.
     */
    @Override
    public double crossEntropyForwardBackward(float[] dlogits, float[] logits, int[] targets, int targetOff,
                                              float scale, int rows, int V, int Vp) {
        if (Vp % F.length() != 0 || (Vp != V && logits[Vp - 1] != Float.NEGATIVE_INFINITY)) {
            return super.crossEntropyForwardBackward(dlogits, logits, targets, targetOff, scale, rows, V, Vp);
        }
        int L = F.length();
        float[] maxes = scratch(rows * (L + 1)); // each row's max, then each row's per-lane sums
        int sums = rows;
        for (int t = 0; t < rows; t++) {
            maxes[t] = crossEntropyRowMax(logits, t * Vp, Vp);
        }
        for (int t = 0; t < rows; t++) {
            crossEntropyRowExp(dlogits, logits, t * Vp, Vp, maxes[t], maxes, sums + t * L);
        }
        double loss = 0, sumProduct = 1;
        for (int t = 0; t < rows; t++) {
            int row = t * Vp;
            int target = targets[targetOff + t];
            loss -= logits[row + target] - maxes[t];
            float sum = crossEntropyRowScale(dlogits, row, Vp, maxes, sums + t * L, scale);
            // each sum is in [1, V] (the row's largest term is 1), so folding at 1e200 keeps the product finite
            sumProduct *= sum;
            if (sumProduct > 1e200) {
                loss += Math.log(sumProduct);
                sumProduct = 1;
            }
            dlogits[row + target] -= scale;
        }
        return loss + Math.log(sumProduct);
    }

    // One row of crossEntropyForwardBackward's passes each, compiled on their own (the launcher's dontinline covers
    // this class): as one method, C2 sometimes failed to intrinsify the last pass's vector store (-XX:+PrintInlining:
    // "VectorSupport::store failed to inline (intrinsic)"), and the kernel then boxed a vector per operation and ran
    // several times slower for the rest of the run, in about two JVMs in five.

    /** The largest of logits[row .. row + Vp). */
    static float crossEntropyRowMax(float[] logits, int row, int Vp) {
        int L = F.length();
        FloatVector maxV = FloatVector.fromArray(F, logits, row);
        for (int i = L; i < Vp; i += L) {
            maxV = maxV.max(FloatVector.fromArray(F, logits, row + i));
        }
        return maxV.reduceLanes(VectorOperators.MAX);
    }

    /** dlogits' row = e^(logit - max), and its per-lane sums at sums[at .. at + L). */
    static void crossEntropyRowExp(float[] dlogits, float[] logits, int row, int Vp, float max, float[] sums, int at) {
        int L = F.length();
        FloatVector sumV = FloatVector.zero(F);
        for (int i = 0; i < Vp; i += L) {
            FloatVector e = exp(FloatVector.fromArray(F, logits, row + i).sub(max), SOFTMAX_FLOOR);
            e.intoArray(dlogits, row + i);
            sumV = sumV.add(e);
        }
        sumV.intoArray(sums, at);
    }

    /** dlogits' row times scale / its sum (the lane sums at sums[at ..], added across); returns that sum. */
    static float crossEntropyRowScale(float[] dlogits, int row, int Vp, float[] sums, int at, float scale) {
        int L = F.length();
        float sum = hsum(FloatVector.fromArray(F, sums, at));
        float inv = scale / sum;
        for (int i = 0; i < Vp; i += L) {
            FloatVector.fromArray(F, dlogits, row + i).mul(inv).intoArray(dlogits, row + i);
        }
        return sum;
    }

    // Elementwise kernels: whole vectors, then a scalar tail.

    @Override
    public void addForward(float[] out, int outOff, float[] a, int aOff, float[] b, int bOff, int n) {
        int i = 0;
        for (int bound = F.loopBound(n); i < bound; i += F.length()) {
            FloatVector.fromArray(F, a, aOff + i).add(FloatVector.fromArray(F, b, bOff + i)).intoArray(out, outOff + i);
        }
        for (; i < n; i++) {
            out[outOff + i] = a[aOff + i] + b[bOff + i];
        }
    }

    @Override
    public void accumulate(float[] dst, int dstOff, float[] src, int srcOff, int n) {
        int i = 0;
        for (int bound = F.loopBound(n); i < bound; i += F.length()) {
            FloatVector.fromArray(F, dst, dstOff + i).add(FloatVector.fromArray(F, src, srcOff + i))
                    .intoArray(dst, dstOff + i);
        }
        for (; i < n; i++) {
            dst[dstOff + i] += src[srcOff + i];
        }
    }

    @Override
    public void gatherRowsAdd(float[] out, int outOff, float[] byToken, int byTokenOff, int[] tokens, int tokOff,
                              float[] byPos, int byPosOff, int T, int n) {
        if (n % F.length() != 0) {
            super.gatherRowsAdd(out, outOff, byToken, byTokenOff, tokens, tokOff, byPos, byPosOff, T, n);
            return;
        }
        for (int t = 0; t < T; t++) {
            int o = outOff + t * n, a = byTokenOff + tokens[tokOff + t] * n, b = byPosOff + t * n;
            for (int i = 0; i < n; i += F.length()) {
                FloatVector.fromArray(F, byToken, a + i).add(FloatVector.fromArray(F, byPos, b + i))
                        .intoArray(out, o + i);
            }
        }
    }

    @Override
    public void scatterRowsAdd(float[] dByToken, int dByTokenOff, int[] tokens, int tokOff, float[] src, int srcOff,
                               int T, int n) {
        if (n % F.length() != 0) {
            super.scatterRowsAdd(dByToken, dByTokenOff, tokens, tokOff, src, srcOff, T, n);
            return;
        }
        for (int t = 0; t < T; t++) {
            int d = dByTokenOff + tokens[tokOff + t] * n, s = srcOff + t * n;
            for (int i = 0; i < n; i += F.length()) {
                FloatVector.fromArray(F, dByToken, d + i).add(FloatVector.fromArray(F, src, s + i))
                        .intoArray(dByToken, d + i);
            }
        }
    }

    @Override
    public void reluForward(float[] out, int outOff, float[] inp, int inpOff, int n) {
        int i = 0;
        for (int bound = F.loopBound(n); i < bound; i += F.length()) {
            FloatVector.fromArray(F, inp, inpOff + i).max(FloatVector.zero(F)).intoArray(out, outOff + i);
        }
        for (; i < n; i++) {
            out[outOff + i] = Math.max(0f, inp[inpOff + i]);
        }
    }

    @Override
    public void reluBackward(float[] dinp, int dinpOff, float[] dout, int doutOff, float[] inp, int inpOff, int n) {
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

    @Override
    public void biasBackward(float[] dbias, int dbiasOff, float[] dout, int doutOff, int T, int OC) {
        if (OC % F.length() != 0) {
            super.biasBackward(dbias, dbiasOff, dout, doutOff, T, OC);
            return;
        }
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

    // ---------------------------------------------------------------------------------------------------------
    // double precision

    private static final VectorSpecies<Double> DV = DoubleVector.SPECIES_PREFERRED;

    /** The library's vector exp (on x86 four times the speed of the scalar one), a scalar tail. */
    @Override
    public void softmax(double[] probs, double[] logits, int lOff, int n) {
        int L = DV.length(), bound = DV.loopBound(n);
        double max = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) {
            max = Math.max(max, logits[lOff + i]);
        }
        DoubleVector sumV = DoubleVector.zero(DV);
        for (int i = 0; i < bound; i += L) {
            DoubleVector e = DoubleVector.fromArray(DV, logits, lOff + i).sub(max).lanewise(VectorOperators.EXP);
            e.intoArray(probs, i);
            sumV = sumV.add(e);
        }
        double sum = sumV.reduceLanes(VectorOperators.ADD);
        for (int i = bound; i < n; i++) {
            probs[i] = Math.exp(logits[lOff + i] - max);
            sum += probs[i];
        }
        double inv = 1 / sum;
        for (int i = 0; i < n; i++) {
            probs[i] *= inv;
        }
    }

    /**
     * Tiles of four rows by two vectors, held in registers over all of k; the columns past the last whole pair of
     * vectors and the rows past the last four go to the reference loop.
     */
    @Override
    public void matmulAdd(double[] out, double[] a, double[] b, int n, int k, int m) {
        int L = DV.length(), mTiles = m / (2 * L) * (2 * L), nTiles = n / 4 * 4;
        for (int r = 0; r < nTiles; r += 4) {
            int o0 = r * m, o1 = o0 + m, o2 = o1 + m, o3 = o2 + m;
            int a0 = r * k, a1 = a0 + k, a2 = a1 + k, a3 = a2 + k;
            for (int c = 0; c < mTiles; c += 2 * L) {
                DoubleVector x0 = DoubleVector.fromArray(DV, out, o0 + c);
                DoubleVector y0 = DoubleVector.fromArray(DV, out, o0 + c + L);
                DoubleVector x1 = DoubleVector.fromArray(DV, out, o1 + c);
                DoubleVector y1 = DoubleVector.fromArray(DV, out, o1 + c + L);
                DoubleVector x2 = DoubleVector.fromArray(DV, out, o2 + c);
                DoubleVector y2 = DoubleVector.fromArray(DV, out, o2 + c + L);
                DoubleVector x3 = DoubleVector.fromArray(DV, out, o3 + c);
                DoubleVector y3 = DoubleVector.fromArray(DV, out, o3 + c + L);
                for (int j = 0; j < k; j++) {
                    DoubleVector w0 = DoubleVector.fromArray(DV, b, j * m + c);
                    DoubleVector w1 = DoubleVector.fromArray(DV, b, j * m + c + L);
                    DoubleVector s = DoubleVector.broadcast(DV, a[a0 + j]);
                    x0 = w0.fma(s, x0);
                    y0 = w1.fma(s, y0);
                    s = DoubleVector.broadcast(DV, a[a1 + j]);
                    x1 = w0.fma(s, x1);
                    y1 = w1.fma(s, y1);
                    s = DoubleVector.broadcast(DV, a[a2 + j]);
                    x2 = w0.fma(s, x2);
                    y2 = w1.fma(s, y2);
                    s = DoubleVector.broadcast(DV, a[a3 + j]);
                    x3 = w0.fma(s, x3);
                    y3 = w1.fma(s, y3);
                }
                x0.intoArray(out, o0 + c);
                y0.intoArray(out, o0 + c + L);
                x1.intoArray(out, o1 + c);
                y1.intoArray(out, o1 + c + L);
                x2.intoArray(out, o2 + c);
                y2.intoArray(out, o2 + c + L);
                x3.intoArray(out, o3 + c);
                y3.intoArray(out, o3 + c + L);
            }
        }
        // columns past the two-vector tiles: one vector at a time while whole vectors remain (the extractor's 76
        // columns left 4 of them to the scalar loop, a fifth of its time), then scalar
        int mVectors = m / L * L;
        for (int r = 0; r < nTiles; r += 4) {
            int o0 = r * m, o1 = o0 + m, o2 = o1 + m, o3 = o2 + m;
            int a0 = r * k, a1 = a0 + k, a2 = a1 + k, a3 = a2 + k;
            for (int c = mTiles; c < mVectors; c += L) {
                DoubleVector x0 = DoubleVector.fromArray(DV, out, o0 + c);
                DoubleVector x1 = DoubleVector.fromArray(DV, out, o1 + c);
                DoubleVector x2 = DoubleVector.fromArray(DV, out, o2 + c);
                DoubleVector x3 = DoubleVector.fromArray(DV, out, o3 + c);
                for (int j = 0; j < k; j++) {
                    DoubleVector w0 = DoubleVector.fromArray(DV, b, j * m + c);
                    x0 = w0.fma(DoubleVector.broadcast(DV, a[a0 + j]), x0);
                    x1 = w0.fma(DoubleVector.broadcast(DV, a[a1 + j]), x1);
                    x2 = w0.fma(DoubleVector.broadcast(DV, a[a2 + j]), x2);
                    x3 = w0.fma(DoubleVector.broadcast(DV, a[a3 + j]), x3);
                }
                x0.intoArray(out, o0 + c);
                x1.intoArray(out, o1 + c);
                x2.intoArray(out, o2 + c);
                x3.intoArray(out, o3 + c);
            }
        }
        ScalarOps.matmulAdd(out, a, b, k, m, 0, nTiles, mVectors, m);
        ScalarOps.matmulAdd(out, a, b, k, m, nTiles, n, 0, m);
    }

    /** Whole vectors with fma, a scalar tail. */
    @Override
    public void axpy(double[] y, int yOff, double a, double[] x, int xOff, int n) {
        int L = DV.length(), bound = DV.loopBound(n), i = 0;
        DoubleVector av = DoubleVector.broadcast(DV, a);
        for (; i < bound; i += L) {
            DoubleVector.fromArray(DV, x, xOff + i).fma(av, DoubleVector.fromArray(DV, y, yOff + i))
                    .intoArray(y, yOff + i);
        }
        for (; i < n; i++) {
            y[yOff + i] += a * x[xOff + i];
        }
    }

    /** Each row as {@link #axpy}: whole vectors with fma, a scalar tail. */
    @Override
    public void axpyRows(double[] y, int yOff, int yStride, double[] alpha, int alphaOff, int alphaStride,
                         double[] x, int xOff, int xStride, int rows, int n) {
        int L = DV.length(), bound = DV.loopBound(n);
        for (int r = 0; r < rows; r++) {
            int yo = yOff + r * yStride, xo = xOff + r * xStride;
            double a = alpha[alphaOff + r * alphaStride];
            DoubleVector av = DoubleVector.broadcast(DV, a);
            int i = 0;
            for (; i < bound; i += L) {
                DoubleVector.fromArray(DV, x, xo + i).fma(av, DoubleVector.fromArray(DV, y, yo + i))
                        .intoArray(y, yo + i);
            }
            for (; i < n; i++) {
                y[yo + i] += a * x[xo + i];
            }
        }
    }
}

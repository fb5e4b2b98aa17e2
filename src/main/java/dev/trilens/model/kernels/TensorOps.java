package dev.trilens.model.kernels;

/**
 * Every layer kernel of the forward and backward passes, for one sequence at a time, llm.c style: each backward sits
 * beside its forward, outputs come first, then inputs, then weights, then sizes.
 *
 * <p>Letters: T positions, C input channels, OC output channels, D d_model, H heads, Dh d_head, V vocab. Arrays are
 * flat and row-major; every array comes with the offset where this sequence's slice starts. Backward kernels
 * accumulate into their gradients with +=; zeroing is the caller's job, and the few that write instead say so.
 *
 * <p>Two implementations: {@link ScalarOps}, the plain reference, and {@link VectorOps}, the Vector API version that
 * training and inference run (it uses the reference for shapes it has no vector code for). {@link Kernels} chooses
 * one; KernelsTest runs every operation on both.
 */
public interface TensorOps {
    /** LayerNorm's epsilon, TransformerLens's default. */
    float LN_EPS = 1e-5f;

    /**
     * The width that padded dimensions (d_mlp, d_vocab in training) should be a multiple of, so the vector code
     * runs without tails: the number of float lanes of a vector, 1 for the scalar reference.
     */
    int lanes();

    /**
     * Whether training should hold attention key-major ([h, key, query]) for sequences of T positions and heads of
     * Dh: only where the implementation has fast key-major kernels for that shape.
     */
    boolean prefersKeyMajor(int T, int Dh);

    // ---------------------------------------------------------------------------------------------------------
    // matmul: out[T,OC] = inp[T,C] @ w[C,OC] + bias[OC]   (weights right-multiply, as in TransformerLens)

    /** out[T,OC] = inp[T,C] @ w[C,OC] + bias (bias may be null). */
    void matmulForward(float[] out, int outOff, float[] inp, int inpOff, float[] w, int wOff, float[] bias, int biasOff,
                       int T, int C, int OC);

    /**
     * matmulForward with inp's rows inpStride apart: reads only the first C of every inpStride columns of a padded
     * activation, so padding costs no multiply-adds where it is the summed-over dimension.
     */
    void matmulForwardStrided(float[] out, int outOff, float[] inp, int inpOff, int inpStride, float[] w, int wOff,
                              float[] bias, int biasOff, int T, int C, int OC);

    /** dw[C,OC] += inp^T @ dout. */
    void matmulBackwardWeight(float[] dw, int dwOff, float[] dout, int doutOff, float[] inp, int inpOff,
                              int T, int C, int OC);

    /** dw[C,OC] += inp^T @ dout with inp's rows inpStride apart. */
    void matmulBackwardWeightStrided(float[] dw, int dwOff, float[] dout, int doutOff, float[] inp, int inpOff,
                                     int inpStride, int T, int C, int OC);

    /**
     * Three matmulForwards of one input, as attention's Q, K and V are: outQ = inp @ w[wQ..] + bias[bQ..], and K and V
     * likewise (bias may be null). The same numbers as the three calls, to the bit; a kernel may run them together.
     */
    default void matmulForward3(float[] outQ, int oQ, float[] outK, int oK, float[] outV, int oV, float[] inp,
                                int inpOff, float[] w, int wQ, int wK, int wV, float[] bias, int bQ, int bK, int bV,
                                int T, int C, int OC) {
        matmulForward(outQ, oQ, inp, inpOff, w, wQ, bias, bQ, T, C, OC);
        matmulForward(outK, oK, inp, inpOff, w, wK, bias, bK, T, C, OC);
        matmulForward(outV, oV, inp, inpOff, w, wV, bias, bV, T, C, OC);
    }

    /**
     * Three matmulBackwardWeights of one input: dw[dwQ..] += inp^T @ dq, and dk, dv likewise. The same numbers as the
     * three calls, to the bit.
     */
    default void matmulBackwardWeight3(float[] dw, int dwQ, int dwK, int dwV, float[] dq, int dqOff, float[] dk,
                                       int dkOff, float[] dv, int dvOff, float[] inp, int inpOff, int T, int C,
                                       int OC) {
        matmulBackwardWeight(dw, dwQ, dq, dqOff, inp, inpOff, T, C, OC);
        matmulBackwardWeight(dw, dwK, dk, dkOff, inp, inpOff, T, C, OC);
        matmulBackwardWeight(dw, dwV, dv, dvOff, inp, inpOff, T, C, OC);
    }

    /** dinp[T,C] += dout[T,OC] @ w^T, given wT = w transposed to [OC,C] (see {@link #transpose}). */
    void matmulBackwardInput(float[] dinp, int dinpOff, float[] dout, int doutOff, float[] wT, int wTOff,
                             int T, int C, int OC);

    /** dinp[T,C] += dout[T,OC] @ wT[OC,C] with dout's rows doutStride apart. */
    void matmulBackwardInputStrided(float[] dinp, int dinpOff, float[] dout, int doutOff, int doutStride,
                                    float[] wT, int wTOff, int T, int C, int OC);

    /** dbias[OC] += sum_t dout[t,:]. */
    void biasBackward(float[] dbias, int dbiasOff, float[] dout, int doutOff, int T, int OC);

    /** out[cols, rows] = in[rows, cols]^T. */
    void transpose(float[] out, int outOff, float[] in, int inOff, int rows, int cols);

    // ---------------------------------------------------------------------------------------------------------
    // layernorm (TransformerLens): x -= mean; scale = sqrt(mean(x^2) + eps); out = x / scale * w + b

    /** layerNormScale then layerNormApply. */
    void layerNormForward(float[] out, int outOff, float[] scale, int scaleOff, float[] inp, int inpOff,
                          float[] w, int wOff, float[] b, int bOff, int T, int D);

    /** The first half of the forward: scale[t] = sqrt(var(x_t) + eps). */
    void layerNormScale(float[] scale, int scaleOff, float[] inp, int inpOff, int T, int D);

    /** The second half of the forward, separate so a hook on hook_scale can change what it divides by. */
    void layerNormApply(float[] out, int outOff, float[] scale, int scaleOff, float[] inp, int inpOff,
                        float[] w, int wOff, float[] b, int bOff, int T, int D);

    /** Gradient through out = xhat * w + b with xhat = (x - mean) / scale, per position; adds to dinp, dw, db. */
    void layerNormBackward(float[] dinp, int dinpOff, float[] dw, int dwOff, float[] db, int dbOff,
                           float[] dout, int doutOff, float[] inp, int inpOff, float[] scale, int scaleOff,
                           float[] w, int wOff, int T, int D);

    // ---------------------------------------------------------------------------------------------------------
    // attention, query-major: scores and pattern [h, query i, key j]; q, k, v, z [position, h, Dh]

    /** scores[h,i,j] = q[i,h,:] . k[j,h,:] / sqrt(Dh) for j <= i, -inf above the diagonal. */
    void attnScoresForward(float[] scores, int sOff, float[] q, int qOff, float[] k, int kOff, int T, int H, int Dh);

    /** dq[i] += sum_{j<=i} dscores[i,j] k[j] / sqrt(Dh); dk[j] += sum_{i>=j} dscores[i,j] q[i] / sqrt(Dh), per head. */
    void attnScoresBackward(float[] dq, int dqOff, float[] dk, int dkOff, float[] dscores, int dsOff,
                            float[] q, int qOff, float[] k, int kOff, int T, int H, int Dh);

    /** pattern[h,i,:] = softmax(scores[h,i,:]); -inf entries get exactly 0. */
    void softmaxForward(float[] pattern, int pOff, float[] scores, int sOff, int T, int H);

    /** dscores[j] += p[j] * (dp[j] - sum_k p[k] dp[k]), causal rows only (masked entries have p = 0). */
    void softmaxBackward(float[] dscores, int dsOff, float[] dpattern, int dpOff, float[] pattern, int pOff,
                         int T, int H);

    /** z[i,h,:] = sum_{j<=i} pattern[h,i,j] * v[j,h,:]. */
    void attnValuesForward(float[] z, int zOff, float[] pattern, int pOff, float[] v, int vOff, int T, int H, int Dh);

    /**
     * dpattern[h,i,j] = dz[i,h,:] . v[j,h,:] for j <= i and 0 above the diagonal (written, not accumulated: the
     * pattern has no other consumer); dv += pattern^T dz.
     */
    void attnValuesBackward(float[] dpattern, int dpOff, float[] dv, int dvOff, float[] dz, int dzOff,
                            float[] pattern, int pOff, float[] v, int vOff, int T, int H, int Dh);

    // ---------------------------------------------------------------------------------------------------------
    // attention, key-major (training only): scoresT, patternT and their gradients [h, key j, query i]. Every kernel
    // here writes its attention-shaped output rather than adding to it.

    /** scoresT[h,j,i] = q[i,h,:] . k[j,h,:] / sqrt(Dh) for i >= j, -inf for i < j. */
    void attnScoresForwardKeyMajor(float[] scoresT, int sOff, float[] q, int qOff, float[] k, int kOff,
                                   int T, int H, int Dh);

    /** patternT[h,:,i] = softmax over keys of scoresT[h,:,i]; masked keys get exactly 0. */
    void softmaxForwardKeyMajor(float[] patternT, int pOff, float[] scoresT, int sOff, int T, int H);

    /** z[i,h,:] = sum_{j<=i} patternT[h,j,i] * v[j,h,:]. */
    void attnValuesForwardKeyMajor(float[] z, int zOff, float[] patternT, int pOff, float[] v, int vOff,
                                   int T, int H, int Dh);

    /** dpatternT[h,j,i] = dz[i,h,:] . v[j,h,:] for i >= j (0 for i < j), written; dv += patternT dz. */
    void attnValuesBackwardKeyMajor(float[] dpatternT, int dpOff, float[] dv, int dvOff, float[] dz, int dzOff,
                                    float[] patternT, int pOff, float[] v, int vOff, int T, int H, int Dh);

    /** dscoresT = patternT * (dpatternT - sum over keys of patternT * dpatternT), per query; written, not added. */
    void softmaxBackwardKeyMajor(float[] dscoresT, int dsOff, float[] dpatternT, int dpOff, float[] patternT,
                                 int pOff, int T, int H);

    /** attnScoresBackward with dscores key-major. */
    void attnScoresBackwardKeyMajor(float[] dq, int dqOff, float[] dk, int dkOff, float[] dscoresT, int dsOff,
                                    float[] q, int qOff, float[] k, int kOff, int T, int H, int Dh);

    // ---------------------------------------------------------------------------------------------------------
    // cross-entropy, elementwise, and rows picked by token

    /**
     * Returns sum_t -log softmax(logits[t])[targets[targetOff + t]] over rows t < rows, and writes those rows of
     * dlogits = (softmax - onehot) * scale. Rows are Vp apart; columns V..Vp-1 are padding (gradient 0) and, when
     * Vp > V, must hold -inf.
     */
    double crossEntropyForwardBackward(float[] dlogits, float[] logits, int[] targets, int targetOff, float scale,
                                       int rows, int V, int Vp);

    void reluForward(float[] out, int outOff, float[] inp, int inpOff, int n);

    /** dinp = dout where inp > 0, else 0: written, not added (dinp may be dout itself). */
    void reluBackward(float[] dinp, int dinpOff, float[] dout, int doutOff, float[] inp, int inpOff, int n);

    /** out = a + b (the residual stream). */
    void addForward(float[] out, int outOff, float[] a, int aOff, float[] b, int bOff, int n);

    /** dst += src, the backward of every residual add and copy. */
    void accumulate(float[] dst, int dstOff, float[] src, int srcOff, int n);

    /**
     * out[t,:] = byToken[tokens[tokOff + t], :] + byPos[t, :] for t < T, rows of n floats: the embedding (W_E and
     * W_pos), or anything else that is a per-token plus a per-position table.
     */
    void gatherRowsAdd(float[] out, int outOff, float[] byToken, int byTokenOff, int[] tokens, int tokOff,
                       float[] byPos, int byPosOff, int T, int n);

    /** dByToken[tokens[tokOff + t], :] += src[t, :] for t < T: gatherRowsAdd's backward by token. */
    void scatterRowsAdd(float[] dByToken, int dByTokenOff, int[] tokens, int tokOff, float[] src, int srcOff,
                        int T, int n);

    // ---------------------------------------------------------------------------------------------------------
    // double precision: the trigram extractor reads a model's components in doubles (interp.ExtractComponents)

    /** probs[0..n) = softmax(logits[lOff..lOff+n)). */
    void softmax(double[] probs, double[] logits, int lOff, int n);

    /** out[n,m] += a[n,k] @ b[k,m]. */
    void matmulAdd(double[] out, double[] a, double[] b, int n, int k, int m);

    /** y[yOff..yOff+n) += a * x[xOff..xOff+n). */
    void axpy(double[] y, int yOff, double a, double[] x, int xOff, int n);

    /**
     * {@link #axpy} on rows rows at once, each exactly as axpy computes it: for r < rows, y[yOff + r * yStride ..
     * + n) += alpha[alphaOff + r * alphaStride] * x[xOff + r * xStride .. + n) (a stride of 0 reuses one row). One
     * call instead of one per row: the extractor's rows are only a few vectors long.
     */
    void axpyRows(double[] y, int yOff, int yStride, double[] alpha, int alphaOff, int alphaStride, double[] x,
                  int xOff, int xStride, int rows, int n);

    /**
     * In place, one vector: (x - mean) / sqrt(var + eps) * w + b, as TransformerLens's LayerNorm; returns the scale.
     * One implementation for both kernels: on a single d_model-wide vector lanes gain nothing, and one summation
     * order keeps what the extractor reads the same whichever kernels run.
     */
    default double layerNorm(double[] x, double[] w, double[] b) {
        int n = x.length;
        double mean = 0;
        for (double v : x) {
            mean += v;
        }
        mean /= n;
        double var = 0;
        for (double v : x) {
            var += (v - mean) * (v - mean);
        }
        double s = Math.sqrt(var / n + LN_EPS);
        for (int i = 0; i < n; i++) {
            x[i] = (x[i] - mean) / s * w[i] + b[i];
        }
        return s;
    }
}

package dev.trilens.model.kernels;

import java.util.Arrays;

/**
 * The reference kernels: plain loops in the order the math is written, what {@link VectorOps} is tested against and
 * what runs when the Vector API is absent (or -Dtrilens.scalar=true). See {@link TensorOps} for each contract.
 */
public class ScalarOps implements TensorOps {

    @Override
    public int lanes() {
        return 1;
    }

    @Override
    public boolean prefersKeyMajor(int T, int Dh) {
        return false;
    }

    // ---------------------------------------------------------------------------------------------------------
    // matmul

    @Override
    public void matmulForward(float[] out, int outOff, float[] inp, int inpOff, float[] w, int wOff, float[] bias,
                              int biasOff, int T, int C, int OC) {
        matmulForwardStrided(out, outOff, inp, inpOff, C, w, wOff, bias, biasOff, T, C, OC);
    }

    @Override
    public void matmulForwardStrided(float[] out, int outOff, float[] inp, int inpOff, int inpStride, float[] w,
                                     int wOff, float[] bias, int biasOff, int T, int C, int OC) {
        for (int t = 0; t < T; t++) {
            int o_t = outOff + t * OC;
            if (bias != null) {
                System.arraycopy(bias, biasOff, out, o_t, OC);
            } else {
                Arrays.fill(out, o_t, o_t + OC, 0f);
            }
            int i_t = inpOff + t * inpStride;
            for (int c = 0; c < C; c++) {
                float x = inp[i_t + c];
                int w_c = wOff + c * OC;
                for (int o = 0; o < OC; o++) {
                    out[o_t + o] += x * w[w_c + o];
                }
            }
        }
    }

    @Override
    public void matmulBackwardWeight(float[] dw, int dwOff, float[] dout, int doutOff, float[] inp, int inpOff,
                                     int T, int C, int OC) {
        matmulBackwardWeightStrided(dw, dwOff, dout, doutOff, inp, inpOff, C, T, C, OC);
    }

    @Override
    public void matmulBackwardWeightStrided(float[] dw, int dwOff, float[] dout, int doutOff, float[] inp, int inpOff,
                                            int inpStride, int T, int C, int OC) {
        for (int t = 0; t < T; t++) {
            for (int c = 0; c < C; c++) {
                // out[t,o] += inp[t,c] * w[c,o]  =>  dw[c,o] += inp[t,c] * dout[t,o]
                float x = inp[inpOff + t * inpStride + c];
                for (int o = 0; o < OC; o++) {
                    dw[dwOff + c * OC + o] += x * dout[doutOff + t * OC + o];
                }
            }
        }
    }

    @Override
    public void matmulBackwardInput(float[] dinp, int dinpOff, float[] dout, int doutOff, float[] wT, int wTOff,
                                    int T, int C, int OC) {
        matmulBackwardInputStrided(dinp, dinpOff, dout, doutOff, OC, wT, wTOff, T, C, OC);
    }

    @Override
    public void matmulBackwardInputStrided(float[] dinp, int dinpOff, float[] dout, int doutOff, int doutStride,
                                           float[] wT, int wTOff, int T, int C, int OC) {
        for (int t = 0; t < T; t++) {
            for (int c = 0; c < C; c++) {
                // out[t,o] += inp[t,c] * w[c,o]  =>  dinp[t,c] += sum_o dout[t,o] * w[c,o]
                float acc = 0f;
                for (int o = 0; o < OC; o++) {
                    acc += dout[doutOff + t * doutStride + o] * wT[wTOff + o * C + c];
                }
                dinp[dinpOff + t * C + c] += acc;
            }
        }
    }

    @Override
    public void biasBackward(float[] dbias, int dbiasOff, float[] dout, int doutOff, int T, int OC) {
        for (int t = 0; t < T; t++) {
            for (int o = 0; o < OC; o++) {
                dbias[dbiasOff + o] += dout[doutOff + t * OC + o];
            }
        }
    }

    @Override
    public void transpose(float[] out, int outOff, float[] in, int inOff, int rows, int cols) {
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                out[outOff + c * rows + r] = in[inOff + r * cols + c];
            }
        }
    }

    // ---------------------------------------------------------------------------------------------------------
    // layernorm

    @Override
    public void layerNormForward(float[] out, int outOff, float[] scale, int scaleOff, float[] inp, int inpOff,
                                 float[] w, int wOff, float[] b, int bOff, int T, int D) {
        layerNormScale(scale, scaleOff, inp, inpOff, T, D);
        layerNormApply(out, outOff, scale, scaleOff, inp, inpOff, w, wOff, b, bOff, T, D);
    }

    @Override
    public void layerNormScale(float[] scale, int scaleOff, float[] inp, int inpOff, int T, int D) {
        for (int t = 0; t < T; t++) {
            int x_t = inpOff + t * D;
            float mean = mean(inp, x_t, D);
            float var = 0f;
            for (int i = 0; i < D; i++) {
                float c = inp[x_t + i] - mean;
                var += c * c;
            }
            scale[scaleOff + t] = (float) Math.sqrt(var / D + LN_EPS);
        }
    }

    private static float mean(float[] x, int off, int n) {
        float sum = 0f;
        for (int i = 0; i < n; i++) {
            sum += x[off + i];
        }
        return sum / n;
    }

    @Override
    public void layerNormApply(float[] out, int outOff, float[] scale, int scaleOff, float[] inp, int inpOff,
                               float[] w, int wOff, float[] b, int bOff, int T, int D) {
        for (int t = 0; t < T; t++) {
            int x_t = inpOff + t * D;
            float mean = mean(inp, x_t, D);
            float rstd = 1f / scale[scaleOff + t];
            for (int i = 0; i < D; i++) {
                out[outOff + t * D + i] = (inp[x_t + i] - mean) * rstd * w[wOff + i] + b[bOff + i];
            }
        }
    }

    @Override
    public void layerNormBackward(float[] dinp, int dinpOff, float[] dw, int dwOff, float[] db, int dbOff,
                                  float[] dout, int doutOff, float[] inp, int inpOff, float[] scale, int scaleOff,
                                  float[] w, int wOff, int T, int D) {
        for (int t = 0; t < T; t++) {
            int x_t = inpOff + t * D;
            int d_t = doutOff + t * D;
            float mean = mean(inp, x_t, D);
            float rstd = 1f / scale[scaleOff + t];
            float dnormMean = 0f;
            float dnormNormMean = 0f;
            for (int i = 0; i < D; i++) {
                float xhat = (inp[x_t + i] - mean) * rstd;
                float dnorm = w[wOff + i] * dout[d_t + i];
                dnormMean += dnorm;
                dnormNormMean += dnorm * xhat;
            }
            dnormMean /= D;
            dnormNormMean /= D;
            for (int i = 0; i < D; i++) {
                float xhat = (inp[x_t + i] - mean) * rstd;
                float dnorm = w[wOff + i] * dout[d_t + i];
                db[dbOff + i] += dout[d_t + i];
                dw[dwOff + i] += xhat * dout[d_t + i];
                dinp[dinpOff + t * D + i] += (dnorm - dnormMean - xhat * dnormNormMean) * rstd;
            }
        }
    }

    // ---------------------------------------------------------------------------------------------------------
    // attention. The layouts are written once, as index functions: query-major [h,i,j] is (h*T + i)*T + j, key-major
    // [h,j,i] is (h*T + j)*T + i; each reference kernel below serves both through them.

    private static int queryMajor(int h, int i, int j, int T) {
        return (h * T + i) * T + j;
    }

    private static int keyMajor(int h, int i, int j, int T) {
        return (h * T + j) * T + i;
    }

    /**
     * Scores reach ~300 in trained models and the pattern is nearly one-hot there, so rounding matters: plain float
     * accumulation moved the challenge model's logits by 1e-3. The reference accumulates in double; the vector
     * version rounds once per fused multiply-add, which keeps it within golden.json's tolerance.
     */
    private static void scores(float[] scores, int sOff, boolean byKey, float[] q, int qOff, float[] k, int kOff,
                               int T, int H, int Dh) {
        double scale = 1.0 / Math.sqrt(Dh);
        int HDh = H * Dh;
        for (int h = 0; h < H; h++) {
            for (int i = 0; i < T; i++) {
                int q_i = qOff + i * HDh + h * Dh;
                for (int j = 0; j < T; j++) {
                    int at = sOff + (byKey ? keyMajor(h, i, j, T) : queryMajor(h, i, j, T));
                    if (j > i) {
                        scores[at] = Float.NEGATIVE_INFINITY;
                        continue;
                    }
                    int k_j = kOff + j * HDh + h * Dh;
                    double dot = 0;
                    for (int e = 0; e < Dh; e++) {
                        dot += (double) q[q_i + e] * k[k_j + e];
                    }
                    scores[at] = (float) (dot * scale);
                }
            }
        }
    }

    private static void scoresBackward(float[] dq, int dqOff, float[] dk, int dkOff, float[] dscores, int dsOff,
                                       boolean byKey, float[] q, int qOff, float[] k, int kOff, int T, int H, int Dh) {
        float scale = (float) (1.0 / Math.sqrt(Dh));
        int HDh = H * Dh;
        for (int h = 0; h < H; h++) {
            for (int i = 0; i < T; i++) {
                int q_i = qOff + i * HDh + h * Dh;
                int dq_i = dqOff + i * HDh + h * Dh;
                for (int j = 0; j <= i; j++) {
                    // scores[h,i,j] = q[i,h,:] . k[j,h,:] * scale
                    float g = dscores[dsOff + (byKey ? keyMajor(h, i, j, T) : queryMajor(h, i, j, T))] * scale;
                    int k_j = kOff + j * HDh + h * Dh;
                    int dk_j = dkOff + j * HDh + h * Dh;
                    for (int e = 0; e < Dh; e++) {
                        dq[dq_i + e] += g * k[k_j + e];
                        dk[dk_j + e] += g * q[q_i + e];
                    }
                }
            }
        }
    }

    private static void softmax(float[] pattern, int pOff, float[] scores, int sOff, boolean byKey, int T, int H) {
        for (int h = 0; h < H; h++) {
            for (int i = 0; i < T; i++) {
                float max = Float.NEGATIVE_INFINITY;
                for (int j = 0; j < T; j++) {
                    max = Math.max(max, scores[sOff + at(byKey, h, i, j, T)]);
                }
                float sum = 0f;
                for (int j = 0; j < T; j++) {
                    float s = scores[sOff + at(byKey, h, i, j, T)];
                    float e = s == Float.NEGATIVE_INFINITY ? 0f : (float) Math.exp(s - max);
                    pattern[pOff + at(byKey, h, i, j, T)] = e;
                    sum += e;
                }
                float inv = 1f / sum;
                for (int j = 0; j < T; j++) {
                    pattern[pOff + at(byKey, h, i, j, T)] *= inv;
                }
            }
        }
    }

    private static int at(boolean byKey, int h, int i, int j, int T) {
        return byKey ? keyMajor(h, i, j, T) : queryMajor(h, i, j, T);
    }

    /** dscores (+)= p * (dp - p . dp) over each query's causal keys; written where `write`, and 0 above the diagonal. */
    private static void softmaxBackward(float[] dscores, int dsOff, float[] dpattern, int dpOff, float[] pattern,
                                        int pOff, boolean byKey, boolean write, int T, int H) {
        for (int h = 0; h < H; h++) {
            for (int i = 0; i < T; i++) {
                float dot = 0f;
                for (int j = 0; j <= i; j++) {
                    dot += pattern[pOff + at(byKey, h, i, j, T)] * dpattern[dpOff + at(byKey, h, i, j, T)];
                }
                for (int j = 0; j < T; j++) {
                    int ds = dsOff + at(byKey, h, i, j, T);
                    if (j > i) {
                        if (write) {
                            dscores[ds] = 0f;
                        }
                        continue;
                    }
                    float p = pattern[pOff + at(byKey, h, i, j, T)];
                    float g = p * (dpattern[dpOff + at(byKey, h, i, j, T)] - dot);
                    dscores[ds] = write ? g : dscores[ds] + g;
                }
            }
        }
    }

    private static void values(float[] z, int zOff, float[] pattern, int pOff, boolean byKey, float[] v, int vOff,
                               int T, int H, int Dh) {
        int HDh = H * Dh;
        for (int i = 0; i < T; i++) {
            for (int h = 0; h < H; h++) {
                int z_ih = zOff + i * HDh + h * Dh;
                Arrays.fill(z, z_ih, z_ih + Dh, 0f);
                for (int j = 0; j <= i; j++) {
                    float p = pattern[pOff + at(byKey, h, i, j, T)];
                    if (p == 0f) {
                        continue;
                    }
                    int v_j = vOff + j * HDh + h * Dh;
                    for (int e = 0; e < Dh; e++) {
                        z[z_ih + e] += p * v[v_j + e];
                    }
                }
            }
        }
    }

    private static void valuesBackward(float[] dpattern, int dpOff, float[] dv, int dvOff, float[] dz, int dzOff,
                                       float[] pattern, int pOff, boolean byKey, float[] v, int vOff,
                                       int T, int H, int Dh) {
        int HDh = H * Dh;
        for (int h = 0; h < H; h++) {
            for (int i = 0; i < T; i++) {
                int dz_ih = dzOff + i * HDh + h * Dh;
                for (int j = 0; j < T; j++) {
                    int dp_at = dpOff + at(byKey, h, i, j, T);
                    if (j > i) {
                        dpattern[dp_at] = 0f;
                        continue;
                    }
                    // z[i,h,e] += pattern[h,i,j] * v[j,h,e]
                    int v_j = vOff + j * HDh + h * Dh;
                    int dv_j = dvOff + j * HDh + h * Dh;
                    float p = pattern[pOff + at(byKey, h, i, j, T)];
                    float dp = 0f;
                    for (int e = 0; e < Dh; e++) {
                        dp += dz[dz_ih + e] * v[v_j + e];
                        dv[dv_j + e] += p * dz[dz_ih + e];
                    }
                    dpattern[dp_at] = dp;
                }
            }
        }
    }

    @Override
    public void attnScoresForward(float[] scores, int sOff, float[] q, int qOff, float[] k, int kOff,
                                  int T, int H, int Dh) {
        scores(scores, sOff, false, q, qOff, k, kOff, T, H, Dh);
    }

    @Override
    public void attnScoresBackward(float[] dq, int dqOff, float[] dk, int dkOff, float[] dscores, int dsOff,
                                   float[] q, int qOff, float[] k, int kOff, int T, int H, int Dh) {
        scoresBackward(dq, dqOff, dk, dkOff, dscores, dsOff, false, q, qOff, k, kOff, T, H, Dh);
    }

    @Override
    public void softmaxForward(float[] pattern, int pOff, float[] scores, int sOff, int T, int H) {
        softmax(pattern, pOff, scores, sOff, false, T, H);
    }

    @Override
    public void softmaxBackward(float[] dscores, int dsOff, float[] dpattern, int dpOff, float[] pattern, int pOff,
                                int T, int H) {
        softmaxBackward(dscores, dsOff, dpattern, dpOff, pattern, pOff, false, false, T, H);
    }

    @Override
    public void attnValuesForward(float[] z, int zOff, float[] pattern, int pOff, float[] v, int vOff,
                                  int T, int H, int Dh) {
        values(z, zOff, pattern, pOff, false, v, vOff, T, H, Dh);
    }

    @Override
    public void attnValuesBackward(float[] dpattern, int dpOff, float[] dv, int dvOff, float[] dz, int dzOff,
                                   float[] pattern, int pOff, float[] v, int vOff, int T, int H, int Dh) {
        valuesBackward(dpattern, dpOff, dv, dvOff, dz, dzOff, pattern, pOff, false, v, vOff, T, H, Dh);
    }

    @Override
    public void attnScoresForwardKeyMajor(float[] scoresT, int sOff, float[] q, int qOff, float[] k, int kOff,
                                          int T, int H, int Dh) {
        scores(scoresT, sOff, true, q, qOff, k, kOff, T, H, Dh);
    }

    @Override
    public void softmaxForwardKeyMajor(float[] patternT, int pOff, float[] scoresT, int sOff, int T, int H) {
        softmax(patternT, pOff, scoresT, sOff, true, T, H);
    }

    @Override
    public void attnValuesForwardKeyMajor(float[] z, int zOff, float[] patternT, int pOff, float[] v, int vOff,
                                          int T, int H, int Dh) {
        values(z, zOff, patternT, pOff, true, v, vOff, T, H, Dh);
    }

    @Override
    public void attnValuesBackwardKeyMajor(float[] dpatternT, int dpOff, float[] dv, int dvOff, float[] dz, int dzOff,
                                           float[] patternT, int pOff, float[] v, int vOff, int T, int H, int Dh) {
        valuesBackward(dpatternT, dpOff, dv, dvOff, dz, dzOff, patternT, pOff, true, v, vOff, T, H, Dh);
    }

    @Override
    public void softmaxBackwardKeyMajor(float[] dscoresT, int dsOff, float[] dpatternT, int dpOff, float[] patternT,
                                        int pOff, int T, int H) {
        softmaxBackward(dscoresT, dsOff, dpatternT, dpOff, patternT, pOff, true, true, T, H);
    }

    @Override
    public void attnScoresBackwardKeyMajor(float[] dq, int dqOff, float[] dk, int dkOff, float[] dscoresT, int dsOff,
                                           float[] q, int qOff, float[] k, int kOff, int T, int H, int Dh) {
        scoresBackward(dq, dqOff, dk, dkOff, dscoresT, dsOff, true, q, qOff, k, kOff, T, H, Dh);
    }

    // ---------------------------------------------------------------------------------------------------------
    // cross-entropy, elementwise, rows by token

    @Override
    public double crossEntropyForwardBackward(float[] dlogits, float[] logits, int[] targets, int targetOff,
                                              float scale, int rows, int V, int Vp) {
        double loss = 0;
        for (int t = 0; t < rows; t++) {
            int row = t * Vp;
            float max = Float.NEGATIVE_INFINITY;
            for (int i = 0; i < V; i++) {
                max = Math.max(max, logits[row + i]);
            }
            float sum = 0f;
            for (int i = 0; i < V; i++) {
                float e = (float) Math.exp(logits[row + i] - max);
                dlogits[row + i] = e;
                sum += e;
            }
            Arrays.fill(dlogits, row + V, row + Vp, 0f);
            int target = targets[targetOff + t];
            loss -= logits[row + target] - max - Math.log(sum);
            float inv = scale / sum;
            for (int i = 0; i < V; i++) {
                dlogits[row + i] *= inv;
            }
            dlogits[row + target] -= scale;
        }
        return loss;
    }

    @Override
    public void reluForward(float[] out, int outOff, float[] inp, int inpOff, int n) {
        for (int i = 0; i < n; i++) {
            out[outOff + i] = Math.max(0f, inp[inpOff + i]);
        }
    }

    @Override
    public void reluBackward(float[] dinp, int dinpOff, float[] dout, int doutOff, float[] inp, int inpOff, int n) {
        for (int i = 0; i < n; i++) {
            dinp[dinpOff + i] = inp[inpOff + i] > 0f ? dout[doutOff + i] : 0f;
        }
    }

    @Override
    public void addForward(float[] out, int outOff, float[] a, int aOff, float[] b, int bOff, int n) {
        for (int i = 0; i < n; i++) {
            out[outOff + i] = a[aOff + i] + b[bOff + i];
        }
    }

    @Override
    public void accumulate(float[] dst, int dstOff, float[] src, int srcOff, int n) {
        for (int i = 0; i < n; i++) {
            dst[dstOff + i] += src[srcOff + i];
        }
    }

    @Override
    public void gatherRowsAdd(float[] out, int outOff, float[] byToken, int byTokenOff, int[] tokens, int tokOff,
                              float[] byPos, int byPosOff, int T, int n) {
        for (int t = 0; t < T; t++) {
            addForward(out, outOff + t * n, byToken, byTokenOff + tokens[tokOff + t] * n, byPos, byPosOff + t * n, n);
        }
    }

    @Override
    public void scatterRowsAdd(float[] dByToken, int dByTokenOff, int[] tokens, int tokOff, float[] src, int srcOff,
                               int T, int n) {
        for (int t = 0; t < T; t++) {
            accumulate(dByToken, dByTokenOff + tokens[tokOff + t] * n, src, srcOff + t * n, n);
        }
    }

    // ---------------------------------------------------------------------------------------------------------
    // double precision

    @Override
    public void softmax(double[] probs, double[] logits, int lOff, int n) {
        double max = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) {
            max = Math.max(max, logits[lOff + i]);
        }
        double sum = 0;
        for (int i = 0; i < n; i++) {
            probs[i] = Math.exp(logits[lOff + i] - max);
            sum += probs[i];
        }
        for (int i = 0; i < n; i++) {
            probs[i] /= sum;
        }
    }

    @Override
    public void matmulAdd(double[] out, double[] a, double[] b, int n, int k, int m) {
        matmulAdd(out, a, b, k, m, 0, n, 0, m);
    }

    @Override
    public void axpy(double[] y, int yOff, double a, double[] x, int xOff, int n) {
        for (int i = 0; i < n; i++) {
            y[yOff + i] += a * x[xOff + i];
        }
    }

    @Override
    public void axpyRows(double[] y, int yOff, int yStride, double[] alpha, int alphaOff, int alphaStride,
                         double[] x, int xOff, int xStride, int rows, int n) {
        for (int r = 0; r < rows; r++) {
            axpy(y, yOff + r * yStride, alpha[alphaOff + r * alphaStride], x, xOff + r * xStride, n);
        }
    }

    /** matmulAdd over rows [r0, r1) and columns [c0, c1) of out only. */
    static void matmulAdd(double[] out, double[] a, double[] b, int k, int m, int r0, int r1, int c0, int c1) {
        for (int r = r0; r < r1; r++) {
            for (int j = 0; j < k; j++) {
                double x = a[r * k + j];
                for (int c = c0; c < c1; c++) {
                    out[r * m + c] += x * b[j * m + c];
                }
            }
        }
    }
}

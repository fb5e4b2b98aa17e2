package dev.trilens.model;

/**
 * Layer kernels for one sequence at a time, llm.c style: each kernel's backward sits beside its forward.
 * Letters: T positions, C input channels, OC output channels, D d_model, H heads, Dh d_head, M d_mlp, V vocab.
 * Arrays are flat and row-major; every argument array comes with the offset where this sequence's slice starts.
 * Backward kernels accumulate into their gradients with +=; zeroing is the caller's job. The exceptions say so
 * (reluBackward, and the cross-entropy's dlogits, which are written).
 */
public final class Kernels {
    /** Whether the Vector-API kernels run; -Dtrilens.scalar=true forces the scalar reference code. */
    public static final boolean VECTOR = ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent()
            && !Boolean.getBoolean("trilens.scalar");

    private Kernels() {
    }

    // ---------------------------------------------------------------------------------------------------------
    // matmul: out[T,OC] = inp[T,C] @ w[C,OC] + bias[OC]   (weights right-multiply, as in TransformerLens)

    public static void matmulForward(float[] out, int outOff, float[] inp, int inpOff, float[] w, int wOff,
                                     float[] bias, int biasOff, int T, int C, int OC) {
        if (VECTOR) {
            VectorKernels.matmulForward(out, outOff, inp, inpOff, w, wOff, bias, biasOff, T, C, OC);
        } else {
            matmulForwardScalar(out, outOff, inp, inpOff, w, wOff, bias, biasOff, T, C, OC);
        }
    }

    public static void matmulForwardScalar(float[] out, int outOff, float[] inp, int inpOff, float[] w, int wOff,
                                           float[] bias, int biasOff, int T, int C, int OC) {
        matmulForwardScalar(out, outOff, inp, inpOff, C, w, wOff, bias, biasOff, T, C, OC);
    }

    // The Strided variants read only the first C (or OC) of every `stride` columns of a padded activation, so the
    // zero padding of d_mlp costs no multiply-adds where it is the summed-over dimension.

    /** matmulForward with inp's rows inpStride apart. */
    public static void matmulForwardStrided(float[] out, int outOff, float[] inp, int inpOff, int inpStride,
                                            float[] w, int wOff, float[] bias, int biasOff, int T, int C, int OC) {
        if (VECTOR && OC % VectorKernels.floatLanes() == 0) {
            VectorKernels.matmulForwardStrided(out, outOff, inp, inpOff, inpStride, w, wOff, bias, biasOff, T, C, OC);
        } else {
            matmulForwardScalar(out, outOff, inp, inpOff, inpStride, w, wOff, bias, biasOff, T, C, OC);
        }
    }

    /** dw[C,OC] += inp^T @ dout with inp's rows inpStride apart. */
    public static void matmulBackwardWeightStrided(float[] dw, int dwOff, float[] dout, int doutOff, float[] inp,
                                                   int inpOff, int inpStride, int T, int C, int OC) {
        if (VECTOR && OC % VectorKernels.floatLanes() == 0) {
            VectorKernels.matmulBackwardWeightStrided(dw, dwOff, dout, doutOff, inp, inpOff, inpStride, T, C, OC);
        } else {
            for (int t = 0; t < T; t++) {
                for (int c = 0; c < C; c++) {
                    float x = inp[inpOff + t * inpStride + c];
                    for (int o = 0; o < OC; o++) {
                        dw[dwOff + c * OC + o] += x * dout[doutOff + t * OC + o];
                    }
                }
            }
        }
    }

    /** dinp[T,C] += dout[T,OC] @ wT[OC,C] with dout's rows doutStride apart. */
    public static void matmulBackwardInputStrided(float[] dinp, int dinpOff, float[] dout, int doutOff, int doutStride,
                                                  float[] wT, int wTOff, int T, int C, int OC) {
        if (VECTOR && C % VectorKernels.floatLanes() == 0) {
            VectorKernels.matmulBackwardInputStrided(dinp, dinpOff, dout, doutOff, doutStride, wT, wTOff, T, C, OC);
        } else {
            matmulBackwardInputScalar(dinp, dinpOff, dout, doutOff, doutStride, wT, wTOff, T, C, OC);
        }
    }

    private static void matmulForwardScalar(float[] out, int outOff, float[] inp, int inpOff, int inpStride,
                                            float[] w, int wOff, float[] bias, int biasOff, int T, int C, int OC) {
        for (int t = 0; t < T; t++) {
            int o_t = outOff + t * OC;
            if (bias != null) {
                System.arraycopy(bias, biasOff, out, o_t, OC);
            } else {
                java.util.Arrays.fill(out, o_t, o_t + OC, 0f);
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

    /** dbias[OC] += sum_t dout[t,:]. */
    public static void biasBackward(float[] dbias, int dbiasOff, float[] dout, int doutOff, int T, int OC) {
        if (VECTOR && OC % VectorKernels.floatLanes() == 0) {
            VectorKernels.biasBackward(dbias, dbiasOff, dout, doutOff, T, OC);
            return;
        }
        for (int t = 0; t < T; t++) {
            for (int o = 0; o < OC; o++) {
                dbias[dbiasOff + o] += dout[doutOff + t * OC + o];
            }
        }
    }

    /** dw[C,OC] += inp^T @ dout. */
    public static void matmulBackwardWeight(float[] dw, int dwOff, float[] dout, int doutOff, float[] inp, int inpOff,
                                            int T, int C, int OC) {
        if (VECTOR) {
            VectorKernels.matmulBackwardWeight(dw, dwOff, dout, doutOff, inp, inpOff, T, C, OC);
        } else {
            matmulBackwardWeightScalar(dw, dwOff, dout, doutOff, inp, inpOff, T, C, OC);
        }
    }

    public static void matmulBackwardWeightScalar(float[] dw, int dwOff, float[] dout, int doutOff, float[] inp,
                                                  int inpOff, int T, int C, int OC) {
        for (int t = 0; t < T; t++) {
            for (int c = 0; c < C; c++) {
                // out[t,o] += inp[t,c] * w[c,o]  =>  dw[c,o] += inp[t,c] * dout[t,o]
                float x = inp[inpOff + t * C + c];
                for (int o = 0; o < OC; o++) {
                    dw[dwOff + c * OC + o] += x * dout[doutOff + t * OC + o];
                }
            }
        }
    }

    /** dinp[T,C] += dout[T,OC] @ w^T, given wT = w transposed to [OC,C] (see {@link #transpose}). */
    public static void matmulBackwardInput(float[] dinp, int dinpOff, float[] dout, int doutOff, float[] wT, int wTOff,
                                           int T, int C, int OC) {
        if (VECTOR) {
            VectorKernels.matmulAccumulate(dinp, dinpOff, dout, doutOff, wT, wTOff, T, OC, C);
        } else {
            matmulBackwardInputScalar(dinp, dinpOff, dout, doutOff, wT, wTOff, T, C, OC);
        }
    }

    public static void matmulBackwardInputScalar(float[] dinp, int dinpOff, float[] dout, int doutOff, float[] wT,
                                                 int wTOff, int T, int C, int OC) {
        matmulBackwardInputScalar(dinp, dinpOff, dout, doutOff, OC, wT, wTOff, T, C, OC);
    }

    private static void matmulBackwardInputScalar(float[] dinp, int dinpOff, float[] dout, int doutOff,
                                                  int doutStride, float[] wT, int wTOff, int T, int C, int OC) {
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

    /** out[cols, rows] = in[rows, cols]^T. */
    public static void transpose(float[] out, int outOff, float[] in, int inOff, int rows, int cols) {
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                out[outOff + c * rows + r] = in[inOff + r * cols + c];
            }
        }
    }

    // ---------------------------------------------------------------------------------------------------------
    // layernorm (TransformerLens): x -= mean; scale = sqrt(mean(x^2) + eps); out = x / scale * w + b

    public static void layerNormForward(float[] out, int outOff, float[] scale, int scaleOff, float[] inp, int inpOff,
                                        float[] w, int wOff, float[] b, int bOff, int T, int D) {
        layerNormScale(scale, scaleOff, inp, inpOff, T, D);
        layerNormApply(out, outOff, scale, scaleOff, inp, inpOff, w, wOff, b, bOff, T, D);
    }

    /** The first half of the forward: scale[t] = sqrt(var(x_t) + eps). */
    public static void layerNormScale(float[] scale, int scaleOff, float[] inp, int inpOff, int T, int D) {
        for (int t = 0; t < T; t++) {
            int x_t = inpOff + t * D;
            float mean = 0f;
            for (int i = 0; i < D; i++) {
                mean += inp[x_t + i];
            }
            mean /= D;
            float var = 0f;
            for (int i = 0; i < D; i++) {
                float c = inp[x_t + i] - mean;
                var += c * c;
            }
            scale[scaleOff + t] = (float) Math.sqrt(var / D + ModelConfig.LN_EPS);
        }
    }

    /** The second half of the forward, separate so a hook on hook_scale can change what it divides by. */
    public static void layerNormApply(float[] out, int outOff, float[] scale, int scaleOff, float[] inp, int inpOff,
                                      float[] w, int wOff, float[] b, int bOff, int T, int D) {
        for (int t = 0; t < T; t++) {
            int x_t = inpOff + t * D;
            float mean = 0f;
            for (int i = 0; i < D; i++) {
                mean += inp[x_t + i];
            }
            mean /= D;
            float rstd = 1f / scale[scaleOff + t];
            for (int i = 0; i < D; i++) {
                out[outOff + t * D + i] = (inp[x_t + i] - mean) * rstd * w[wOff + i] + b[bOff + i];
            }
        }
    }

    /** Gradient through out = xhat * w + b with xhat = (x - mean) / sqrt(var + eps), per position. */
    public static void layerNormBackward(float[] dinp, int dinpOff, float[] dw, int dwOff, float[] db, int dbOff,
                                         float[] dout, int doutOff, float[] inp, int inpOff, float[] scale,
                                         int scaleOff, float[] w, int wOff, int T, int D) {
        for (int t = 0; t < T; t++) {
            int x_t = inpOff + t * D;
            int d_t = doutOff + t * D;
            float mean = 0f;
            for (int i = 0; i < D; i++) {
                mean += inp[x_t + i];
            }
            mean /= D;
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
    // attention scores: scores[h,i,j] = q[i,h,:] . k[j,h,:] / sqrt(Dh) for j <= i, -inf above the diagonal.
    // Scores reach ~300 in trained models and the pattern is nearly one-hot there, so rounding matters: plain float
    // accumulation moved the challenge model's logits by 1e-3. This reference accumulates in double; the vector
    // version rounds once per fused multiply-add, which keeps it within golden.json's tolerance.

    public static void attnScoresForward(float[] scores, int sOff, float[] q, int qOff, float[] k, int kOff,
                                         int T, int H, int Dh) {
        if (VECTOR) {
            VectorKernels.attnScoresForward(scores, sOff, q, qOff, k, kOff, T, H, Dh);
        } else {
            attnScoresForwardScalar(scores, sOff, q, qOff, k, kOff, T, H, Dh);
        }
    }

    public static void attnScoresForwardScalar(float[] scores, int sOff, float[] q, int qOff, float[] k, int kOff,
                                               int T, int H, int Dh) {
        double scale = 1.0 / Math.sqrt(Dh);
        int HDh = H * Dh;
        for (int h = 0; h < H; h++) {
            for (int i = 0; i < T; i++) {
                int s_hi = sOff + (h * T + i) * T;
                int q_i = qOff + i * HDh + h * Dh;
                for (int j = 0; j <= i; j++) {
                    int k_j = kOff + j * HDh + h * Dh;
                    double dot = 0;
                    for (int e = 0; e < Dh; e++) {
                        dot += (double) q[q_i + e] * k[k_j + e];
                    }
                    scores[s_hi + j] = (float) (dot * scale);
                }
                for (int j = i + 1; j < T; j++) {
                    scores[s_hi + j] = Float.NEGATIVE_INFINITY;
                }
            }
        }
    }

    public static void attnScoresBackward(float[] dq, int dqOff, float[] dk, int dkOff, float[] dscores, int dsOff,
                                          float[] q, int qOff, float[] k, int kOff, int T, int H, int Dh) {
        if (VECTOR && Dh % VectorKernels.floatLanes() == 0) {
            VectorKernels.attnScoresBackward(dq, dqOff, dk, dkOff, dscores, dsOff, q, qOff, k, kOff, T, H, Dh);
            return;
        }
        float scale = (float) (1.0 / Math.sqrt(Dh));
        int HDh = H * Dh;
        for (int h = 0; h < H; h++) {
            for (int i = 0; i < T; i++) {
                int s_hi = dsOff + (h * T + i) * T;
                int q_i = qOff + i * HDh + h * Dh;
                int dq_i = dqOff + i * HDh + h * Dh;
                for (int j = 0; j <= i; j++) {
                    // scores[h,i,j] = q[i,h,:] . k[j,h,:] * scale
                    float g = dscores[s_hi + j] * scale;
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

    // ---------------------------------------------------------------------------------------------------------
    // softmax over keys: pattern[h,i,:] = softmax(scores[h,i,:]); -inf entries get exactly 0

    public static void softmaxForward(float[] pattern, int pOff, float[] scores, int sOff, int T, int H) {
        if (VECTOR) {
            VectorKernels.softmaxForward(pattern, pOff, scores, sOff, T, H);
        } else {
            softmaxForwardScalar(pattern, pOff, scores, sOff, T, H);
        }
    }

    public static void softmaxForwardScalar(float[] pattern, int pOff, float[] scores, int sOff, int T, int H) {
        for (int r = 0; r < H * T; r++) {
            int row = r * T;
            float max = Float.NEGATIVE_INFINITY;
            for (int j = 0; j < T; j++) {
                max = Math.max(max, scores[sOff + row + j]);
            }
            float sum = 0f;
            for (int j = 0; j < T; j++) {
                float s = scores[sOff + row + j];
                float e = s == Float.NEGATIVE_INFINITY ? 0f : (float) Math.exp(s - max);
                pattern[pOff + row + j] = e;
                sum += e;
            }
            float inv = 1f / sum;
            for (int j = 0; j < T; j++) {
                pattern[pOff + row + j] *= inv;
            }
        }
    }

    /** dscores[j] += p[j] * (dp[j] - sum_k p[k] dp[k]), causal rows only (masked entries have p = 0). */
    public static void softmaxBackward(float[] dscores, int dsOff, float[] dpattern, int dpOff, float[] pattern,
                                       int pOff, int T, int H) {
        if (VECTOR) {
            VectorKernels.softmaxBackward(dscores, dsOff, dpattern, dpOff, pattern, pOff, T, H);
            return;
        }
        for (int h = 0; h < H; h++) {
            for (int i = 0; i < T; i++) {
                int row = (h * T + i) * T;
                float dot = 0f;
                for (int j = 0; j <= i; j++) {
                    dot += pattern[pOff + row + j] * dpattern[dpOff + row + j];
                }
                for (int j = 0; j <= i; j++) {
                    float p = pattern[pOff + row + j];
                    dscores[dsOff + row + j] += p * (dpattern[dpOff + row + j] - dot);
                }
            }
        }
    }

    // ---------------------------------------------------------------------------------------------------------
    // z[i,h,:] = sum_j pattern[h,i,j] * v[j,h,:]

    public static void attnValuesForward(float[] z, int zOff, float[] pattern, int pOff, float[] v, int vOff,
                                         int T, int H, int Dh) {
        if (VECTOR && Dh % VectorKernels.floatLanes() == 0) {
            VectorKernels.attnValuesForward(z, zOff, pattern, pOff, v, vOff, T, H, Dh);
            return;
        }
        int HDh = H * Dh;
        for (int i = 0; i < T; i++) {
            for (int h = 0; h < H; h++) {
                int z_ih = zOff + i * HDh + h * Dh;
                java.util.Arrays.fill(z, z_ih, z_ih + Dh, 0f);
                int p_hi = pOff + (h * T + i) * T;
                for (int j = 0; j < T; j++) {
                    float p = pattern[p_hi + j];
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

    /**
     * dpattern[h,i,j] = dz[i,h,:] . v[j,h,:] for j <= i and 0 above the diagonal (written, not accumulated: the
     * pattern has no other consumer); dv += pattern^T dz.
     */
    public static void attnValuesBackward(float[] dpattern, int dpOff, float[] dv, int dvOff, float[] dz, int dzOff,
                                          float[] pattern, int pOff, float[] v, int vOff, int T, int H, int Dh) {
        if (VECTOR && Dh % VectorKernels.floatLanes() == 0) {
            VectorKernels.attnValuesBackward(dpattern, dpOff, dv, dvOff, dz, dzOff, pattern, pOff, v, vOff, T, H, Dh);
        } else {
            attnValuesBackwardScalar(dpattern, dpOff, dv, dvOff, dz, dzOff, pattern, pOff, v, vOff, T, H, Dh);
        }
    }

    public static void attnValuesBackwardScalar(float[] dpattern, int dpOff, float[] dv, int dvOff, float[] dz,
                                                int dzOff, float[] pattern, int pOff, float[] v, int vOff,
                                                int T, int H, int Dh) {
        int HDh = H * Dh;
        for (int r = 0; r < H * T; r++) {
            java.util.Arrays.fill(dpattern, dpOff + r * T, dpOff + (r + 1) * T, 0f);
        }
        for (int i = 0; i < T; i++) {
            for (int h = 0; h < H; h++) {
                int dz_ih = dzOff + i * HDh + h * Dh;
                int p_hi = pOff + (h * T + i) * T;
                for (int j = 0; j <= i; j++) {
                    // z[i,h,e] += pattern[h,i,j] * v[j,h,e]
                    int v_j = vOff + j * HDh + h * Dh;
                    int dv_j = dvOff + j * HDh + h * Dh;
                    float p = pattern[p_hi + j];
                    float dp = 0f;
                    for (int e = 0; e < Dh; e++) {
                        dp += dz[dz_ih + e] * v[v_j + e];
                        dv[dv_j + e] += p * dz[dz_ih + e];
                    }
                    dpattern[dpOff + p_hi - pOff + j] += dp;
                }
            }
        }
    }

    // ---------------------------------------------------------------------------------------------------------
    // cross-entropy of each row of logits against its target, fused with its gradient

    /**
     * Returns sum_t -log softmax(logits[t])[targets[targetOff + t]] over rows t < rows, and writes those rows of
     * dlogits = (softmax - onehot) * scale. Rows are Vp apart; columns V..Vp-1 are padding (gradient 0), which the
     * vector version needs to be -inf.
     */
    public static double crossEntropyForwardBackward(float[] dlogits, float[] logits, int[] targets, int targetOff,
                                                     float scale, int rows, int V, int Vp) {
        if (VECTOR && Vp % VectorKernels.floatLanes() == 0 && (Vp == V || logits[Vp - 1] == Float.NEGATIVE_INFINITY)) {
            return VectorKernels.crossEntropyForwardBackward(dlogits, logits, targets, targetOff, scale, rows, V, Vp);
        }
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
            java.util.Arrays.fill(dlogits, row + V, row + Vp, 0f);
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

    // ---------------------------------------------------------------------------------------------------------
    // softmax of one row in double precision (the trigram extractor's distributions, P(c | a, b) at a position)

    /** probs[0..n) = softmax(logits[0..n)). */
    public static void softmax(double[] probs, double[] logits, int n) {
        if (VECTOR) {
            VectorKernels.softmax(probs, logits, n);
        } else {
            softmaxScalar(probs, logits, n);
        }
    }

    public static void softmaxScalar(double[] probs, double[] logits, int n) {
        double max = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) {
            max = Math.max(max, logits[i]);
        }
        double sum = 0;
        for (int i = 0; i < n; i++) {
            probs[i] = Math.exp(logits[i] - max);
            sum += probs[i];
        }
        for (int i = 0; i < n; i++) {
            probs[i] /= sum;
        }
    }

    // ---------------------------------------------------------------------------------------------------------
    // relu

    public static void reluForward(float[] out, int outOff, float[] inp, int inpOff, int n) {
        if (VECTOR) {
            VectorKernels.relu(out, outOff, inp, inpOff, n);
            return;
        }
        for (int i = 0; i < n; i++) {
            out[outOff + i] = Math.max(0f, inp[inpOff + i]);
        }
    }

    /** dinp = dout where inp > 0, else 0: written, not added (dinp may be dout itself). */
    public static void reluBackward(float[] dinp, int dinpOff, float[] dout, int doutOff, float[] inp, int inpOff,
                                    int n) {
        if (VECTOR) {
            VectorKernels.reluBackward(dinp, dinpOff, dout, doutOff, inp, inpOff, n);
            return;
        }
        for (int i = 0; i < n; i++) {
            dinp[dinpOff + i] = inp[inpOff + i] > 0f ? dout[doutOff + i] : 0f;
        }
    }

    // ---------------------------------------------------------------------------------------------------------
    // elementwise sum: out = a + b (residual stream)

    public static void addForward(float[] out, int outOff, float[] a, int aOff, float[] b, int bOff, int n) {
        if (VECTOR) {
            VectorKernels.add(out, outOff, a, aOff, b, bOff, n);
            return;
        }
        for (int i = 0; i < n; i++) {
            out[outOff + i] = a[aOff + i] + b[bOff + i];
        }
    }

    /** dst += src, the backward of every residual add and copy. */
    public static void accumulate(float[] dst, int dstOff, float[] src, int srcOff, int n) {
        if (VECTOR) {
            VectorKernels.accumulate(dst, dstOff, src, srcOff, n);
            return;
        }
        for (int i = 0; i < n; i++) {
            dst[dstOff + i] += src[srcOff + i];
        }
    }

    // ---------------------------------------------------------------------------------------------------------
    // rows picked by token: the embedding lookup and its backward

    /**
     * out[t,:] = byToken[tokens[tokOff + t], :] + byPos[t, :] for t < T, rows of n floats: the embedding (W_E and
     * W_pos), or anything else that is a per-token plus a per-position table.
     */
    public static void gatherRowsAdd(float[] out, int outOff, float[] byToken, int byTokenOff, int[] tokens,
                                     int tokOff, float[] byPos, int byPosOff, int T, int n) {
        if (VECTOR && n % VectorKernels.floatLanes() == 0) {
            VectorKernels.gatherRowsAdd(out, outOff, byToken, byTokenOff, tokens, tokOff, byPos, byPosOff, T, n);
            return;
        }
        for (int t = 0; t < T; t++) {
            addForward(out, outOff + t * n, byToken, byTokenOff + tokens[tokOff + t] * n, byPos, byPosOff + t * n, n);
        }
    }

    /** dByToken[tokens[tokOff + t], :] += src[t, :] for t < T, rows of n floats: gatherRowsAdd's backward by token. */
    public static void scatterRowsAdd(float[] dByToken, int dByTokenOff, int[] tokens, int tokOff, float[] src,
                                      int srcOff, int T, int n) {
        if (VECTOR && n % VectorKernels.floatLanes() == 0) {
            VectorKernels.scatterRowsAdd(dByToken, dByTokenOff, tokens, tokOff, src, srcOff, T, n);
            return;
        }
        for (int t = 0; t < T; t++) {
            accumulate(dByToken, dByTokenOff + tokens[tokOff + t] * n, src, srcOff + t * n, n);
        }
    }
}

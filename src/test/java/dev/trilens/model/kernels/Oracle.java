package dev.trilens.model.kernels;

/**
 * The kernels' math written out as plainly as possible, in double precision, for KernelsTest: what both
 * implementations must agree with. Layouts as in {@link TensorOps}: q, k, v, z [T, H, Dh]; scores and pattern
 * [H, T(query), T(key)]. Backward oracles return the gradient alone (tests add it to what the kernel accumulates into).
 */
final class Oracle {
    private Oracle() {
    }

    static double[] widen(float[] a) {
        double[] d = new double[a.length];
        for (int i = 0; i < a.length; i++) {
            d[i] = a[i];
        }
        return d;
    }

    /** inp [T, C] (rows inpStride apart) @ w [C, OC] + bias. */
    static double[] matmul(float[] inp, int inpStride, float[] w, float[] bias, int T, int C, int OC) {
        double[] out = new double[T * OC];
        for (int t = 0; t < T; t++) {
            for (int o = 0; o < OC; o++) {
                double s = bias == null ? 0 : bias[o];
                for (int c = 0; c < C; c++) {
                    s += (double) inp[t * inpStride + c] * w[c * OC + o];
                }
                out[t * OC + o] = s;
            }
        }
        return out;
    }

    /** d(inp @ w)/dw = inp^T @ dout, inp rows inpStride apart. */
    static double[] matmulBackwardWeight(float[] dout, float[] inp, int inpStride, int T, int C, int OC) {
        double[] dw = new double[C * OC];
        for (int c = 0; c < C; c++) {
            for (int o = 0; o < OC; o++) {
                for (int t = 0; t < T; t++) {
                    dw[c * OC + o] += (double) inp[t * inpStride + c] * dout[t * OC + o];
                }
            }
        }
        return dw;
    }

    /** d(inp @ w)/dinp = dout @ w^T, dout rows doutStride apart, w [C, OC]. */
    static double[] matmulBackwardInput(float[] dout, int doutStride, float[] w, int T, int C, int OC) {
        double[] dinp = new double[T * C];
        for (int t = 0; t < T; t++) {
            for (int c = 0; c < C; c++) {
                for (int o = 0; o < OC; o++) {
                    dinp[t * C + c] += (double) dout[t * doutStride + o] * w[c * OC + o];
                }
            }
        }
        return dinp;
    }

    private static int qkv(int t, int h, int e, int H, int Dh) {
        return (t * H + h) * Dh + e;
    }

    private static int hij(int h, int i, int j, int T) {
        return (h * T + i) * T + j;
    }

    static double[] scores(float[] q, float[] k, int T, int H, int Dh) {
        double[] s = new double[H * T * T];
        for (int h = 0; h < H; h++) {
            for (int i = 0; i < T; i++) {
                for (int j = 0; j < T; j++) {
                    double dot = 0;
                    for (int e = 0; e < Dh; e++) {
                        dot += (double) q[qkv(i, h, e, H, Dh)] * k[qkv(j, h, e, H, Dh)];
                    }
                    s[hij(h, i, j, T)] = j > i ? Double.NEGATIVE_INFINITY : dot / Math.sqrt(Dh);
                }
            }
        }
        return s;
    }

    static double[] softmax(float[] scores, int T, int H) {
        double[] p = new double[scores.length];
        for (int r = 0; r < H * T; r++) {
            double max = Double.NEGATIVE_INFINITY, sum = 0;
            for (int j = 0; j < T; j++) {
                max = Math.max(max, scores[r * T + j]);
            }
            for (int j = 0; j < T; j++) {
                sum += Math.exp(scores[r * T + j] - max);
            }
            for (int j = 0; j < T; j++) {
                p[r * T + j] = Math.exp(scores[r * T + j] - max) / sum;
            }
        }
        return p;
    }

    static double[] values(float[] pattern, float[] v, int T, int H, int Dh) {
        double[] z = new double[T * H * Dh];
        for (int i = 0; i < T; i++) {
            for (int h = 0; h < H; h++) {
                for (int j = 0; j <= i; j++) {
                    for (int e = 0; e < Dh; e++) {
                        z[qkv(i, h, e, H, Dh)] += (double) pattern[hij(h, i, j, T)] * v[qkv(j, h, e, H, Dh)];
                    }
                }
            }
        }
        return z;
    }

    /** dpattern[h,i,j] = dz[i,h,:] . v[j,h,:] below the diagonal, 0 above. */
    static double[] valuesBackwardDpattern(float[] dz, float[] v, int T, int H, int Dh) {
        double[] dp = new double[H * T * T];
        for (int h = 0; h < H; h++) {
            for (int i = 0; i < T; i++) {
                for (int j = 0; j <= i; j++) {
                    for (int e = 0; e < Dh; e++) {
                        dp[hij(h, i, j, T)] += (double) dz[qkv(i, h, e, H, Dh)] * v[qkv(j, h, e, H, Dh)];
                    }
                }
            }
        }
        return dp;
    }

    static double[] valuesBackwardDv(float[] dz, float[] pattern, int T, int H, int Dh) {
        double[] dv = new double[T * H * Dh];
        for (int h = 0; h < H; h++) {
            for (int i = 0; i < T; i++) {
                for (int j = 0; j <= i; j++) {
                    for (int e = 0; e < Dh; e++) {
                        dv[qkv(j, h, e, H, Dh)] += (double) pattern[hij(h, i, j, T)] * dz[qkv(i, h, e, H, Dh)];
                    }
                }
            }
        }
        return dv;
    }

    static double[] softmaxBackward(float[] dpattern, float[] pattern, int T, int H) {
        double[] ds = new double[pattern.length];
        for (int r = 0; r < H * T; r++) {
            int i = r % T;
            double dot = 0;
            for (int j = 0; j <= i; j++) {
                dot += (double) pattern[r * T + j] * dpattern[r * T + j];
            }
            for (int j = 0; j <= i; j++) {
                ds[r * T + j] = pattern[r * T + j] * (dpattern[r * T + j] - dot);
            }
        }
        return ds;
    }

    /** {dq, dk} of scores = q k^T / sqrt(Dh) below the diagonal. */
    static double[][] scoresBackward(float[] dscores, float[] q, float[] k, int T, int H, int Dh) {
        double[] dq = new double[q.length], dk = new double[k.length];
        for (int h = 0; h < H; h++) {
            for (int i = 0; i < T; i++) {
                for (int j = 0; j <= i; j++) {
                    double g = dscores[hij(h, i, j, T)] / Math.sqrt(Dh);
                    for (int e = 0; e < Dh; e++) {
                        dq[qkv(i, h, e, H, Dh)] += g * k[qkv(j, h, e, H, Dh)];
                        dk[qkv(j, h, e, H, Dh)] += g * q[qkv(i, h, e, H, Dh)];
                    }
                }
            }
        }
        return new double[][] {dq, dk};
    }

    /**
     * {out, scale, dx, dw, db} of TransformerLens's LayerNorm, out = (x - mean) / sqrt(var + eps) * w + b, for the
     * given dout; dx by the chain rule written out term by term.
     */
    static double[][] layerNorm(float[] x, float[] w, float[] b, float[] dout, int T, int D) {
        double[] out = new double[T * D], scale = new double[T], dx = new double[T * D];
        double[] dw = new double[D], db = new double[D];
        for (int t = 0; t < T; t++) {
            double mean = 0, var = 0;
            for (int i = 0; i < D; i++) {
                mean += x[t * D + i];
            }
            mean /= D;
            for (int i = 0; i < D; i++) {
                var += (x[t * D + i] - mean) * (x[t * D + i] - mean);
            }
            double s = Math.sqrt(var / D + TensorOps.LN_EPS);
            scale[t] = s;
            double[] xhat = new double[D], dxhat = new double[D];
            for (int i = 0; i < D; i++) {
                xhat[i] = (x[t * D + i] - mean) / s;
                out[t * D + i] = xhat[i] * w[i] + b[i];
                dw[i] += xhat[i] * dout[t * D + i];
                db[i] += dout[t * D + i];
                dxhat[i] = w[i] * dout[t * D + i];
            }
            // xhat_i = (x_i - mean) / s:  dx_j = (dxhat_j - mean(dxhat) - xhat_j * mean(dxhat * xhat)) / s
            double m1 = 0, m2 = 0;
            for (int i = 0; i < D; i++) {
                m1 += dxhat[i] / D;
                m2 += dxhat[i] * xhat[i] / D;
            }
            for (int j = 0; j < D; j++) {
                dx[t * D + j] = (dxhat[j] - m1 - xhat[j] * m2) / s;
            }
        }
        return new double[][] {out, scale, dx, dw, db};
    }
}

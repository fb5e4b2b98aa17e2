package dev.trilens.model;

/**
 * A deliberately naive forward pass, written straight from the TransformerLens definitions with no packing, no
 * fusion and doubles throughout: what the real kernels are checked against for configs golden.json does not cover.
 */
final class ReferenceForward {
    private ReferenceForward() {
    }

    /** logits [B*T*V] for tokens [B*T]. */
    static double[] logits(Weights w, int[] tokens, int B, int T) {
        ModelConfig c = w.cfg;
        int D = c.dModel(), H = c.nHeads(), Dh = c.dHead(), M = c.dMlp(), V = c.dVocab();
        double[] out = new double[B * T * V];
        for (int b = 0; b < B; b++) {
            double[][] x = new double[T][D];
            for (int t = 0; t < T; t++) {
                for (int d = 0; d < D; d++) {
                    x[t][d] = p(w, "embed.W_E", tokens[b * T + t] * D + d) + p(w, "pos_embed.W_pos", t * D + d);
                }
            }
            for (int l = 0; l < c.nLayers(); l++) {
                String pre = "blocks." + l + ".";
                double[][] a = c.layerNorm() ? ln(w, pre + "ln1", x) : x;
                double[][] attnOut = new double[T][D];
                for (int t = 0; t < T; t++) {
                    for (int d = 0; d < D; d++) {
                        attnOut[t][d] = p(w, pre + "attn.b_O", d);
                    }
                }
                for (int h = 0; h < H; h++) {
                    double[][] q = proj(w, pre + "attn.W_Q", pre + "attn.b_Q", h, a);
                    double[][] k = proj(w, pre + "attn.W_K", pre + "attn.b_K", h, a);
                    double[][] v = proj(w, pre + "attn.W_V", pre + "attn.b_V", h, a);
                    for (int i = 0; i < T; i++) {
                        double[] s = new double[i + 1];
                        double max = Double.NEGATIVE_INFINITY;
                        for (int j = 0; j <= i; j++) {
                            for (int e = 0; e < Dh; e++) {
                                s[j] += q[i][e] * k[j][e];
                            }
                            s[j] /= Math.sqrt(Dh);
                            max = Math.max(max, s[j]);
                        }
                        double sum = 0;
                        for (int j = 0; j <= i; j++) {
                            s[j] = Math.exp(s[j] - max);
                            sum += s[j];
                        }
                        double[] z = new double[Dh];
                        for (int j = 0; j <= i; j++) {
                            for (int e = 0; e < Dh; e++) {
                                z[e] += s[j] / sum * v[j][e];
                            }
                        }
                        for (int d = 0; d < D; d++) {
                            for (int e = 0; e < Dh; e++) {
                                attnOut[i][d] += z[e] * p(w, pre + "attn.W_O", (h * Dh + e) * D + d);
                            }
                        }
                    }
                }
                double[][] mid = add(x, attnOut);
                if (c.attnOnly()) {
                    x = mid;
                    continue;
                }
                double[][] m = c.layerNorm() ? ln(w, pre + "ln2", mid) : mid;
                double[][] mlpOut = new double[T][D];
                for (int t = 0; t < T; t++) {
                    for (int n = 0; n < M; n++) {
                        double h = p(w, pre + "mlp.b_in", n);
                        for (int d = 0; d < D; d++) {
                            h += m[t][d] * p(w, pre + "mlp.W_in", d * M + n);
                        }
                        h = Math.max(0, h);
                        for (int d = 0; d < D; d++) {
                            mlpOut[t][d] += h * p(w, pre + "mlp.W_out", n * D + d);
                        }
                    }
                    for (int d = 0; d < D; d++) {
                        mlpOut[t][d] += p(w, pre + "mlp.b_out", d);
                    }
                }
                x = add(mid, mlpOut);
            }
            double[][] f = c.layerNorm() ? ln(w, "ln_final", x) : x;
            for (int t = 0; t < T; t++) {
                for (int u = 0; u < V; u++) {
                    double acc = p(w, "unembed.b_U", u);
                    for (int d = 0; d < D; d++) {
                        acc += f[t][d] * p(w, "unembed.W_U", d * V + u);
                    }
                    out[(b * T + t) * V + u] = acc;
                }
            }
        }
        return out;
    }

    private static double p(Weights w, String name, int i) {
        return w.data[w.offset(name) + i];
    }

    private static double[][] proj(Weights w, String W, String bias, int h, double[][] x) {
        int D = w.cfg.dModel(), Dh = w.cfg.dHead();
        double[][] out = new double[x.length][Dh];
        for (int t = 0; t < x.length; t++) {
            for (int e = 0; e < Dh; e++) {
                double acc = p(w, bias, h * Dh + e);
                for (int d = 0; d < D; d++) {
                    acc += x[t][d] * p(w, W, (h * D + d) * Dh + e);
                }
                out[t][e] = acc;
            }
        }
        return out;
    }

    private static double[][] ln(Weights w, String prefix, double[][] x) {
        int D = x[0].length;
        double[][] out = new double[x.length][D];
        for (int t = 0; t < x.length; t++) {
            double mean = 0;
            for (double v : x[t]) {
                mean += v;
            }
            mean /= D;
            double var = 0;
            for (double v : x[t]) {
                var += (v - mean) * (v - mean);
            }
            double scale = Math.sqrt(var / D + ModelConfig.LN_EPS);
            for (int d = 0; d < D; d++) {
                out[t][d] = (x[t][d] - mean) / scale * p(w, prefix + ".w", d) + p(w, prefix + ".b", d);
            }
        }
        return out;
    }

    private static double[][] add(double[][] a, double[][] b) {
        double[][] out = new double[a.length][a[0].length];
        for (int t = 0; t < a.length; t++) {
            for (int d = 0; d < a[0].length; d++) {
                out[t][d] = a[t][d] + b[t][d];
            }
        }
        return out;
    }
}

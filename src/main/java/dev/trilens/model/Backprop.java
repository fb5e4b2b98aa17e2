package dev.trilens.model;

import dev.trilens.model.kernels.Kernels;
import dev.trilens.model.kernels.TensorOps;
import java.util.Arrays;

/**
 * Training forward + backward: mean cross-entropy of positions 0..T-2 predicting 1..T-1, and its gradient with
 * respect to every parameter, in the flat layout of {@link ParamLayout}.
 *
 * <p>Each worker runs one sequence forward and straight back, so its activations stay in cache. Sequences are
 * grouped into fixed blocks whose gradients are summed in block order, which makes the result the same whatever the
 * thread count. All buffers are kept between calls: the steady state allocates nothing.
 *
 * <p>Without LayerNorm the first layer's attention input is W_E[token] + W_pos[position], so its Q, K and V are
 * (W_E W_Q)[token] + (W_pos W_Q)[position] + b_Q: two small tables made once per step, then one add per position
 * instead of a matmul per sequence. Backward, the gradients of q, k and v are summed into one bucket per token and
 * one per position (the tables' gradients), and those turn into the gradients of W_Q, b_Q, W_E and W_pos with a few
 * small matmuls after the whole batch. This removes a quarter of the multiply-adds of a step for the challenge model.
 */
public final class Backprop {
    /** Sequences per gradient block: fixed, so the summation order does not depend on the thread count. */
    static final int BLOCK = 16;

    private final ModelConfig cfg;
    private final TensorOps ops;
    private final ParamLayout layout;
    private final int D, H, Dh, HDh, M, V, L;
    /** d_mlp and d_vocab padded to whole vectors (see PackedParams). */
    private final int Mp, Vp;
    private final PackedParams packing;
    /** This step's weights in the packed layout, and the summed gradient in the packed layout. */
    private final float[] pw, packedGrads;
    /**
     * Sequence length, and positions run: the last position predicts nothing and, attention being causal, changes
     * nothing before it, so training leaves it out.
     */
    private int T = -1, P = -1;
    /** The forward pass for P positions, in training's layouts; rebuilt when T changes. */
    private Forward forward;
    private Workspace[] workspaces = new Workspace[0];
    /** Per block: the packed gradient, then the table buckets. */
    private float[][] blockGrads = new float[0][];
    private double[] blockLoss = new double[0];
    private final Transposed wT;
    /** Where each parameter starts in the packed layout, looked up once rather than per sequence; -1 if absent. */
    private record LayerAt(int wQ, int bQ, int wK, int bK, int wV, int bV, int wO, int bO, int ln1w, int ln1b,
                           int ln2w, int ln2b, int wIn, int bIn, int wOut, int bOut) {
    }
    private final LayerAt[] layerAt;
    private final int wE, wPos, wU, bU, lnfW, lnfB;
    /**
     * Whether layer 0's Q, K and V come from per-token and per-position tables (see the class comment). The tables
     * hold Q, K then V, each [V, H*Dh] (by token) and [n_ctx, H*Dh] (by position, biases included); their gradients
     * (the buckets) sit after the packed gradient in each block's buffer, so they are summed with it.
     */
    private final boolean factored;
    private final float[] tableByToken, tableByPos;
    private final int bucketByToken, bucketByPos, gradSize;

    public Backprop(ModelConfig cfg) {
        this(cfg, !cfg.layerNorm() && tablesPayOff(cfg), Kernels.ops());
    }

    /**
     * The tables save three matmuls per sequence, but every block of sequences zeroes and sums their buckets: worth
     * it while the buckets (3 x (V + n_ctx) x H*Dh floats) are smaller than a block's residual stream. For a large
     * vocabulary they are not.
     */
    private static boolean tablesPayOff(ModelConfig cfg) {
        long buckets = 3L * (cfg.dVocab() + cfg.nCtx()) * cfg.nHeads() * cfg.dHead();
        return buckets <= (long) BLOCK * cfg.nCtx() * cfg.dModel();
    }

    /**
     * factorEmbedding: use the tables for layer 0 (only valid without LayerNorm); false runs every matmul. ops: the
     * kernels (tests run the scalar reference through the same pass).
     */
    Backprop(ModelConfig cfg, boolean factorEmbedding, TensorOps ops) {
        if (factorEmbedding && cfg.layerNorm()) {
            throw new IllegalArgumentException("the embedding tables need a model without LayerNorm");
        }
        this.cfg = cfg;
        this.ops = ops;
        this.layout = new ParamLayout(cfg);
        D = cfg.dModel();
        H = cfg.nHeads();
        Dh = cfg.dHead();
        HDh = H * Dh;
        M = cfg.dMlp();
        V = cfg.dVocab();
        L = cfg.nLayers();
        packing = new PackedParams(layout, cfg, ops.lanes());
        Mp = packing.dMlpPadded;
        Vp = packing.dVocabPadded;
        pw = new float[packing.size];
        wT = new Transposed();
        layerAt = new LayerAt[L];
        for (int l = 0; l < L; l++) {
            layerAt[l] = new LayerAt(at(ParamLayout.attnWeight(l, "Q")), at(ParamLayout.attnBias(l, "Q")),
                    at(ParamLayout.attnWeight(l, "K")), at(ParamLayout.attnBias(l, "K")),
                    at(ParamLayout.attnWeight(l, "V")), at(ParamLayout.attnBias(l, "V")),
                    at(ParamLayout.attnWeight(l, "O")), at(ParamLayout.attnBias(l, "O")),
                    at(ParamLayout.ln1(l) + ".w"), at(ParamLayout.ln1(l) + ".b"), at(ParamLayout.ln2(l) + ".w"),
                    at(ParamLayout.ln2(l) + ".b"), at(ParamLayout.mlp(l, "W_in")), at(ParamLayout.mlp(l, "b_in")),
                    at(ParamLayout.mlp(l, "W_out")), at(ParamLayout.mlp(l, "b_out")));
        }
        wE = at(ParamLayout.W_E);
        wPos = at(ParamLayout.W_POS);
        wU = at(ParamLayout.W_U);
        bU = at(ParamLayout.B_U);
        lnfW = at(ParamLayout.LN_FINAL + ".w");
        lnfB = at(ParamLayout.LN_FINAL + ".b");
        factored = factorEmbedding;
        tableByToken = new float[factored ? 3 * V * HDh : 0];
        tableByPos = new float[factored ? 3 * cfg.nCtx() * HDh : 0];
        bucketByToken = packing.size;
        bucketByPos = bucketByToken + tableByToken.length;
        gradSize = bucketByPos + tableByPos.length;
        packedGrads = new float[gradSize];
    }

    private int at(String param) {
        return packing.has(param) ? packing.offset(param) : -1;
    }

    /**
     * Returns the mean loss over the batch; grads (length = layout total size) is overwritten with its gradient.
     * Deterministic for a given input whatever Parallel.threads() is.
     */
    public double lossAndGradients(Weights w, int[] tokens, int B, int T, float[] grads) {
        if (grads.length != layout.totalSize()) {
            throw new IllegalArgumentException("lossAndGradients: " + grads.length + " gradients for "
                    + layout.totalSize() + " parameters");
        }
        prepare(w, tokens, B, T, true);
        int nBlocks = (B + BLOCK - 1) / BLOCK;
        if (blockGrads.length < nBlocks) {
            blockGrads = new float[nBlocks][gradSize];
        }
        double invCount = 1.0 / ((double) B * (T - 1));
        Parallel.forEachItem(nBlocks, (worker, blk) -> {
            Workspace ws = workspaces[worker];
            float[] g = blockGrads[blk];
            Arrays.fill(g, 0f);
            double loss = 0;
            for (int b = blk * BLOCK; b < Math.min(B, (blk + 1) * BLOCK); b++) {
                ws.forward(tokens, b * T);
                loss += ws.lossAndLogitGradients(tokens, b * T, (float) invCount);
                ws.backward(tokens, b * T, g);
            }
            blockLoss[blk] = loss;
        });
        System.arraycopy(blockGrads[0], 0, packedGrads, 0, packedGrads.length);
        double loss = blockLoss[0];
        for (int blk = 1; blk < nBlocks; blk++) {
            ops.accumulate(packedGrads, 0, blockGrads[blk], 0, packedGrads.length);
            loss += blockLoss[blk];
        }
        if (factored) {
            applyBuckets(P);
        }
        packing.unpack(packedGrads, grads);
        return loss * invCount;
    }

    /**
     * The mean loss over the batch, forward only: the validation loss, with the training kernels (the value
     * lossAndGradients returns, and as deterministic).
     */
    public double loss(Weights w, int[] tokens, int B, int T) {
        prepare(w, tokens, B, T, false);
        int nBlocks = (B + BLOCK - 1) / BLOCK;
        Parallel.forEachItem(nBlocks, (worker, blk) -> {
            Workspace ws = workspaces[worker];
            double loss = 0;
            for (int b = blk * BLOCK; b < Math.min(B, (blk + 1) * BLOCK); b++) {
                ws.forward(tokens, b * T);
                loss += ws.lossAndLogitGradients(tokens, b * T, 0f);
            }
            blockLoss[blk] = loss;
        });
        double loss = blockLoss[0];
        for (int blk = 1; blk < nBlocks; blk++) {
            loss += blockLoss[blk];
        }
        return loss * (1.0 / ((double) B * (T - 1))); // as lossAndGradients rounds it
    }

    /**
     * Checks the shapes, sizes the buffers, and packs this call's weights (and fills the tables); the transposed
     * weights only the backward pass needs.
     */
    private void prepare(Weights w, int[] tokens, int B, int T, boolean backward) {
        if (!w.cfg.equals(cfg) || tokens.length != (long) B * T || B < 1 || T < 2 || T > cfg.nCtx()) {
            throw new IllegalArgumentException("Backprop: config/shape mismatch (B=" + B + ", T=" + T + ")");
        }
        if (T != this.T || workspaces.length < Parallel.threads()) {
            this.T = T;
            P = T - 1;
            forward = new Forward(cfg, packing, ops, P,
                    new Forward.Options(false, false, ops.prefersKeyMajor(P, Dh), factored));
            forward.bindWeights(pw);
            forward.bindTables(tableByToken, tableByPos);
            workspaces = new Workspace[Parallel.threads()];
            for (int i = 0; i < workspaces.length; i++) {
                workspaces[i] = new Workspace();
            }
        }
        int nBlocks = (B + BLOCK - 1) / BLOCK;
        if (blockLoss.length < nBlocks) {
            blockLoss = new double[nBlocks];
        }
        packing.pack(w.data, pw);
        // padded logits of -inf get exactly zero probability, so the loss can run over whole vectors
        Arrays.fill(pw, bU + V, bU + Vp, Float.NEGATIVE_INFINITY);
        if (backward) {
            wT.update();
        }
        if (factored) {
            fillTables(P);
        }
    }

    /** Layer 0's offsets of W_Q, W_K, W_V (index 0, 1, 2), and of their biases. */
    private int qkvWeight(int j) {
        LayerAt at = layerAt[0];
        return j == 0 ? at.wQ() : j == 1 ? at.wK() : at.wV();
    }

    private int qkvBias(int j) {
        LayerAt at = layerAt[0];
        return j == 0 ? at.bQ() : j == 1 ? at.bK() : at.bV();
    }

    /** tableByToken = W_E @ W_{Q,K,V}; tableByPos = W_pos[:P] @ W_{Q,K,V} + b_{Q,K,V}. */
    private void fillTables(int P) {
        for (int j = 0; j < 3; j++) {
            ops.matmulForward(tableByToken, j * V * HDh, pw, wE, pw, qkvWeight(j), null, 0, V, D, HDh);
            ops.matmulForward(tableByPos, j * cfg.nCtx() * HDh, pw, wPos, pw, qkvWeight(j), pw, qkvBias(j), P, D,
                    HDh);
        }
    }

    /** The chain rule through the tables: their summed gradients (the buckets) into W_{Q,K,V}, b_{Q,K,V}, W_E, W_pos. */
    private void applyBuckets(int P) {
        float[] g = packedGrads;
        for (int j = 0; j < 3; j++) {
            int byToken = bucketByToken + j * V * HDh, byPos = bucketByPos + j * cfg.nCtx() * HDh;
            ops.matmulBackwardWeight(g, qkvWeight(j), g, byToken, pw, wE, V, D, HDh);
            ops.matmulBackwardWeight(g, qkvWeight(j), g, byPos, pw, wPos, P, D, HDh);
            ops.biasBackward(g, qkvBias(j), g, byPos, P, HDh);
            float[] wTj = j == 0 ? wT.wqT[0] : j == 1 ? wT.wkT[0] : wT.wvT[0];
            ops.matmulBackwardInput(g, wE, g, byToken, wTj, 0, V, D, HDh);
            ops.matmulBackwardInput(g, wPos, g, byPos, wTj, 0, P, D, HDh);
        }
    }

    /** Each packed weight matrix transposed, for the input gradients (dinp = dout @ w^T), refreshed every call. */
    private final class Transposed {
        final float[][] wqT = new float[L][], wkT = new float[L][], wvT = new float[L][];
        final float[][] woT = new float[L][], winT = new float[L][], woutT = new float[L][];
        final float[] wuT = new float[Vp * D];

        Transposed() {
            for (int l = 0; l < L; l++) {
                wqT[l] = new float[HDh * D];
                wkT[l] = new float[HDh * D];
                wvT[l] = new float[HDh * D];
                woT[l] = new float[D * HDh];
                if (M > 0) {
                    winT[l] = new float[Mp * D];
                    woutT[l] = new float[D * Mp];
                }
            }
        }

        void update() {
            for (int l = 0; l < L; l++) {
                LayerAt at = layerAt[l];
                ops.transpose(wqT[l], 0, pw, at.wQ(), D, HDh);
                ops.transpose(wkT[l], 0, pw, at.wK(), D, HDh);
                ops.transpose(wvT[l], 0, pw, at.wV(), D, HDh);
                ops.transpose(woT[l], 0, pw, at.wO(), HDh, D);
                if (M > 0) {
                    ops.transpose(winT[l], 0, pw, at.wIn(), D, Mp);
                    ops.transpose(woutT[l], 0, pw, at.wOut(), Mp, D);
                }
            }
            ops.transpose(wuT, 0, pw, wU, D, Vp);
        }
    }

    /** One worker's activations (the forward pass's, by hook name) and gradients for a single sequence. */
    private final class Workspace {
        final Forward.Frame frame = new Forward.Frame(forward);
        /** Attention held key-major ([h, key, query]): the forward's choice, which the backward must follow. */
        final boolean keyMajor = ops.prefersKeyMajor(P, Dh);
        // the activations the backward reads, per layer
        final float[][] residPre = new float[L][], ln1Scale = new float[L][], ln1Out = new float[L][];
        final float[][] q = new float[L][], k = new float[L][], v = new float[L][], pattern = new float[L][];
        final float[][] z = new float[L][], residMid = new float[L][], ln2Scale = new float[L][];
        final float[][] ln2Out = new float[L][], pre = new float[L][], post = new float[L][];
        final float[][] residPost = new float[L][];
        final float[] lnfScale, lnfOut, logits;
        // gradients of activations, reused across layers
        final float[] dResid, dMid, dAttnIn, dMlpIn, dz, dq, dk, dv, dPattern, dScores, dPre, dPost, dLogits;

        Workspace() {
            for (int l = 0; l < L; l++) {
                residPre[l] = act(HookNames.residPre(l));
                q[l] = act(HookNames.attn(l, "q"));
                k[l] = act(HookNames.attn(l, "k"));
                v[l] = act(HookNames.attn(l, "v"));
                pattern[l] = act(HookNames.attn(l, "pattern"));
                z[l] = act(HookNames.attn(l, "z"));
                residPost[l] = act(HookNames.residPost(l));
                if (cfg.layerNorm()) {
                    ln1Scale[l] = act(HookNames.ln1(l) + ".hook_scale");
                    ln1Out[l] = act(HookNames.ln1(l) + ".hook_normalized");
                }
                if (M > 0) {
                    residMid[l] = act(HookNames.residMid(l));
                    pre[l] = act(HookNames.mlp(l, "pre"));
                    post[l] = act(HookNames.mlp(l, "post"));
                    if (cfg.layerNorm()) {
                        ln2Scale[l] = act(HookNames.ln2(l) + ".hook_scale");
                        ln2Out[l] = act(HookNames.ln2(l) + ".hook_normalized");
                    }
                }
            }
            lnfScale = cfg.layerNorm() ? act(HookNames.LN_FINAL + ".hook_scale") : null;
            lnfOut = cfg.layerNorm() ? act(HookNames.LN_FINAL + ".hook_normalized") : null;
            logits = act(HookNames.LOGITS);
            dResid = new float[P * D];
            dMid = new float[P * D];
            dAttnIn = new float[P * D];
            dMlpIn = new float[P * D];
            dz = new float[P * HDh];
            dq = new float[P * HDh];
            dk = new float[P * HDh];
            dv = new float[P * HDh];
            dPattern = new float[H * P * P];
            dScores = new float[H * P * P];
            dPre = new float[P * Math.max(Mp, 1)];
            dPost = new float[P * Math.max(Mp, 1)];
            dLogits = new float[P * Vp];
        }

        private float[] act(String name) {
            return frame.array(forward.id(name));
        }

        float[] attnIn(int l) {
            return cfg.layerNorm() ? ln1Out[l] : residPre[l];
        }

        float[] mlpIn(int l) {
            return cfg.layerNorm() ? ln2Out[l] : residMid[l];
        }

        float[] unembedIn() {
            return cfg.layerNorm() ? lnfOut : residPost[L - 1];
        }

        /** The forward pass of the sequence at tokens[tokOff..tokOff+P), up to the logits. */
        void forward(int[] tokens, int tokOff) {
            Backprop.this.forward.run(frame, 0, tokens, tokOff);
        }

        /** Position t predicts token t+1: returns the summed loss; dLogits = its gradient times lossScale. */
        double lossAndLogitGradients(int[] tokens, int tokOff, float lossScale) {
            return ops.crossEntropyForwardBackward(dLogits, logits, tokens, tokOff + 1, lossScale, P, V, Vp);
        }

        /** The backward pass from dLogits, adding every parameter's gradient (and the table buckets) into g. */
        void backward(int[] tokens, int tokOff, float[] g) {
            float[] w = pw;
            ops.matmulBackwardWeight(g, wU, dLogits, 0, unembedIn(), 0, P, D, Vp);
            ops.biasBackward(g, bU, dLogits, 0, P, Vp);
            Arrays.fill(dResid, 0f);
            if (cfg.layerNorm()) {
                Arrays.fill(dMlpIn, 0f);
                ops.matmulBackwardInputStrided(dMlpIn, 0, dLogits, 0, Vp, wT.wuT, 0, P, D, V);
                ops.layerNormBackward(dResid, 0, g, lnfW, g, lnfB,
                        dMlpIn, 0, residPost[L - 1], 0, lnfScale, 0, w, lnfW, P, D);
            } else {
                // the padding's gradient is zero: sum over the real vocabulary only
                ops.matmulBackwardInputStrided(dResid, 0, dLogits, 0, Vp, wT.wuT, 0, P, D, V);
            }
            // dResid now holds the gradient of resid_post of the last layer
            for (int l = L - 1; l >= 0; l--) {
                LayerAt at = layerAt[l];
                // dMid: gradient of the residual stream after attention (resid_mid, or resid_post when attn-only)
                System.arraycopy(dResid, 0, dMid, 0, P * D);
                if (M > 0) {
                    // resid_post = resid_mid + post @ W_out + b_out
                    ops.matmulBackwardWeightStrided(g, at.wOut(), dResid, 0, post[l], 0, Mp, P, M, D);
                    ops.biasBackward(g, at.bOut(), dResid, 0, P, D);
                    // dPost = dResid @ W_out^T, written rather than added (no zeroing pass)
                    ops.matmulForward(dPost, 0, dResid, 0, wT.woutT[l], 0, null, 0, P, D, Mp);
                    ops.reluBackward(dPre, 0, dPost, 0, pre[l], 0, P * Mp);
                    ops.matmulBackwardWeight(g, at.wIn(), dPre, 0, mlpIn(l), 0, P, D, Mp);
                    ops.biasBackward(g, at.bIn(), dPre, 0, P, Mp);
                    if (cfg.layerNorm()) {
                        Arrays.fill(dMlpIn, 0f);
                        ops.matmulBackwardInputStrided(dMlpIn, 0, dPre, 0, Mp, wT.winT[l], 0, P, D, M);
                        ops.layerNormBackward(dMid, 0, g, at.ln2w(), g, at.ln2b(),
                                dMlpIn, 0, residMid[l], 0, ln2Scale[l], 0, w, at.ln2w(), P, D);
                    } else {
                        ops.matmulBackwardInputStrided(dMid, 0, dPre, 0, Mp, wT.winT[l], 0, P, D, M);
                    }
                }
                // resid_mid = resid_pre + z @ W_O + b_O
                ops.matmulBackwardWeight(g, at.wO(), dMid, 0, z[l], 0, P, HDh, D);
                ops.biasBackward(g, at.bO(), dMid, 0, P, D);
                ops.matmulForward(dz, 0, dMid, 0, wT.woT[l], 0, null, 0, P, D, HDh); // dz = dMid @ W_O^T
                Arrays.fill(dv, 0f);
                Arrays.fill(dq, 0f);
                Arrays.fill(dk, 0f);
                if (keyMajor) {
                    ops.attnValuesBackwardKeyMajor(dPattern, 0, dv, 0, dz, 0, pattern[l], 0, v[l], 0, P, H,
                            Dh);
                    ops.softmaxBackwardKeyMajor(dScores, 0, dPattern, 0, pattern[l], 0, P, H);
                    ops.attnScoresBackwardKeyMajor(dq, 0, dk, 0, dScores, 0, q[l], 0, k[l], 0, P, H, Dh);
                } else {
                    ops.attnValuesBackward(dPattern, 0, dv, 0, dz, 0, pattern[l], 0, v[l], 0, P, H, Dh);
                    Arrays.fill(dScores, 0f);
                    ops.softmaxBackward(dScores, 0, dPattern, 0, pattern[l], 0, P, H);
                    ops.attnScoresBackward(dq, 0, dk, 0, dScores, 0, q[l], 0, k[l], 0, P, H, Dh);
                }
                if (factored && l == 0) {
                    // the tables' gradients; the residual's own path to W_E and W_pos is dMid, below
                    int byToken = V * HDh;
                    ops.scatterRowsAdd(g, bucketByToken, tokens, tokOff, dq, 0, P, HDh);
                    ops.scatterRowsAdd(g, bucketByToken + byToken, tokens, tokOff, dk, 0, P, HDh);
                    ops.scatterRowsAdd(g, bucketByToken + 2 * byToken, tokens, tokOff, dv, 0, P, HDh);
                    int byPos = bucketByPos, posStride = cfg.nCtx() * HDh;
                    ops.accumulate(g, byPos, dq, 0, P * HDh);
                    ops.accumulate(g, byPos + posStride, dk, 0, P * HDh);
                    ops.accumulate(g, byPos + 2 * posStride, dv, 0, P * HDh);
                    System.arraycopy(dMid, 0, dResid, 0, P * D);
                    continue;
                }
                float[] x = attnIn(l);
                ops.matmulBackwardWeight3(g, at.wQ(), at.wK(), at.wV(), dq, 0, dk, 0, dv, 0, x, 0, P, D, HDh);
                ops.biasBackward(g, at.bQ(), dq, 0, P, HDh);
                ops.biasBackward(g, at.bK(), dk, 0, P, HDh);
                ops.biasBackward(g, at.bV(), dv, 0, P, HDh);
                // the residual passes straight through: dResid (of resid_pre) = dMid + attention-input gradient
                float[] dIn = cfg.layerNorm() ? dAttnIn : dMid;
                if (cfg.layerNorm()) {
                    Arrays.fill(dAttnIn, 0f);
                }
                ops.matmulBackwardInput(dIn, 0, dq, 0, wT.wqT[l], 0, P, D, HDh);
                ops.matmulBackwardInput(dIn, 0, dk, 0, wT.wkT[l], 0, P, D, HDh);
                ops.matmulBackwardInput(dIn, 0, dv, 0, wT.wvT[l], 0, P, D, HDh);
                if (cfg.layerNorm()) {
                    ops.layerNormBackward(dMid, 0, g, at.ln1w(), g, at.ln1b(),
                            dAttnIn, 0, residPre[l], 0, ln1Scale[l], 0, w, at.ln1w(), P, D);
                }
                System.arraycopy(dMid, 0, dResid, 0, P * D);
            }
            // resid_pre[0] = W_E[token] + W_pos
            ops.scatterRowsAdd(g, wE, tokens, tokOff, dResid, 0, P, D);
            ops.accumulate(g, wPos, dResid, 0, P * D); // W_pos's first P rows, in one go
        }

    }
}
